import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genlab.data.tokenizers import BPETokenizer, CharTokenizer, load_tokenizer, save_tokenizer, train_tokenizer
from genlab.errors import GenlabError

from .conftest import CORPUS

BPE = BPETokenizer.train(CORPUS + "naïve café — 東京 🙂\n", vocab_size=300)
CHAR = CharTokenizer.train(CORPUS)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_char_round_trip_any_unicode(text):
    assert CHAR.decode(CHAR.encode(text)) == text


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.text())
def test_bpe_round_trip_any_unicode(text):
    assert BPE.decode(BPE.encode(text)) == text


def test_char_known_chars_one_token_each_and_unknown_fall_back_to_bytes():
    ids = CHAR.encode("the")
    assert len(ids) == 3 and all(i < len(CHAR.chars) for i in ids)
    emoji = CHAR.encode("🙂")  # unseen: four UTF-8 bytes
    assert len(emoji) == 4 and all(i >= len(CHAR.chars) for i in emoji)
    assert CHAR.vocab_size == len(set(CORPUS)) + 256


def test_bpe_learns_merges():
    text = "the quick brown fox"
    assert len(BPE.encode(text)) < len(text.encode("utf-8"))
    assert BPE.vocab_size <= 300


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_save_load_round_trip(tmp_path, kind):
    tok = train_tokenizer(kind, CORPUS, vocab_size=280)
    save_tokenizer(tok, tmp_path)
    again = load_tokenizer(tmp_path)
    sample = "the lazy dog — 🙂 ünïcode"
    assert again.encode(sample) == tok.encode(sample)
    assert again.decode(tok.encode(sample)) == sample


def test_bad_tokenizer_inputs(tmp_path):
    with pytest.raises(GenlabError, match="257"):
        BPETokenizer.train(CORPUS, vocab_size=100)
    with pytest.raises(GenlabError, match="unknown tokenizer"):
        train_tokenizer("words", CORPUS)
    with pytest.raises(GenlabError, match="missing tokenizer.json"):
        load_tokenizer(tmp_path)
