import numpy as np
import pytest
import torch

from genlab.data.tokenizers import CharTokenizer
from genlab.errors import GenlabError
from genlab.models.ngram import NGramConfig, NGramLM

from .conftest import CORPUS, TEXT_200


def fitted(text: str, **cfg) -> NGramLM:
    tok = CharTokenizer.train(text)
    model = NGramLM(NGramConfig(vocab_size=tok.vocab_size, **cfg), tok)
    model.fit(tok.encode(text))
    return model


@pytest.mark.parametrize("smoothing", ["kneser-ney", "witten-bell"])
@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_next_token_probabilities_sum_to_one_seen_and_unseen(smoothing, order):
    model = fitted(CORPUS, order=order, smoothing=smoothing)
    tok = model.tokenizer
    seen = tok.encode("the quick bro")
    unseen = tok.encode("xqzj")  # characters and contexts that never occur
    for history in (seen, unseen, tok.encode("q"), []):
        p = model.next_distribution(np.array(history, dtype=np.int64))
        assert p.shape == (tok.vocab_size,)
        assert (p > 0).all(), "interpolation with the uniform distribution leaves nothing at zero"
        assert p.sum() == pytest.approx(1.0, abs=1e-9)


def test_sequence_scoring_agrees_with_next_distribution():
    model = fitted(CORPUS, order=4)
    ids = np.array(model.tokenizer.encode("the lazy fox catches gold"), dtype=np.int64)
    p = model.probs(ids)
    for i in range(1, len(ids)):
        assert p[i] == pytest.approx(model.next_distribution(ids[:i])[ids[i]], rel=1e-12)


def test_higher_order_fits_training_text_better_and_seen_continuations_dominate():
    ids = torch.tensor(CharTokenizer.train(CORPUS).encode(CORPUS))
    losses = [-fitted(CORPUS, order=k).token_logprobs(ids).mean().item() for k in (1, 2, 3, 5)]
    assert losses == sorted(losses, reverse=True)
    model = fitted(CORPUS, order=5)
    p = model.next_distribution(np.array(model.tokenizer.encode("the quick brow"), dtype=np.int64))
    assert model.tokenizer.decode([int(p.argmax())]) == "n"


def test_drives_200_character_text_to_near_zero_loss():
    # With (almost) no discount the estimate is the relative frequency, which memorizes the text.
    model = fitted(TEXT_200, order=12, discount=0.001)
    ids = torch.tensor(model.tokenizer.encode(TEXT_200))
    lp = model.token_logprobs(ids)
    assert -lp[20:].mean().item() < 0.02  # once the context is long enough, every next char is certain


def test_witten_bell_matches_the_formula_on_a_tiny_case():
    # text "abab": bigram counts ab:2, ba:1; context "a" has C=2, one follower type.
    tok = CharTokenizer(["a", "b"])
    model = NGramLM(NGramConfig(vocab_size=tok.vocab_size, order=2, smoothing="witten-bell"), tok)
    model.fit(tok.encode("abab"))
    V = tok.vocab_size
    p1_b = (2 + 2 * (1 / V)) / (4 + 2)  # unigram: C(b)=2, N=4, T=2 types
    expected = (2 + 1 * p1_b) / (2 + 1)
    assert model.next_distribution(np.array(tok.encode("a")))[tok.encode("b")[0]] == pytest.approx(expected)


def test_bad_inputs():
    with pytest.raises(GenlabError, match="order"):
        NGramConfig(order=0).validate()
    with pytest.raises(GenlabError, match="smoothing"):
        NGramConfig(smoothing="laplace").validate()
    tok = CharTokenizer.train("abc")
    with pytest.raises(GenlabError, match="needs at least"):
        NGramLM(NGramConfig(vocab_size=tok.vocab_size, order=5), tok).fit(tok.encode("abc"))
    with pytest.raises(GenlabError, match="no counts"):
        NGramLM(NGramConfig(vocab_size=tok.vocab_size), tok).next_distribution(np.zeros(2, dtype=np.int64))
