import json

import pytest
import torch

from genlab.data.text import TokenBatches, load_text, split_text
from genlab.errors import GenlabError


def test_kjv_is_bundled_and_matches_its_description():
    text = load_text("kjv")
    assert len(text) == 4_137_820 and len(set(text)) == 63
    assert text.startswith("In the beginning God created the heaven and the earth.\n")
    assert text.count("\n") == 31_102


def test_folder_and_jsonl(tmp_path):
    (tmp_path / "b.txt").write_text("second", encoding="utf-8")
    (tmp_path / "a.txt").write_text("first", encoding="utf-8")
    (tmp_path / "ignored.bin").write_bytes(b"\x00\x01")
    assert load_text(tmp_path) == "first\n\nsecond"
    jl = tmp_path / "docs.jsonl"
    jl.write_text(json.dumps({"text": "one"}) + "\n\n" + json.dumps("two") + "\n", encoding="utf-8")
    assert load_text(jl) == "one\n\ntwo"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "no text"),
        (b"   \n\n", "no text"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary"),
        (b"caf\xe9 latin-1", "not UTF-8.*0xe9 at offset 3"),
    ],
)
def test_bad_files_are_named(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(GenlabError, match=message) as e:
        load_text(path)
    assert "bad.txt" in str(e.value)


def test_missing_and_empty_folder_and_bad_jsonl(tmp_path):
    with pytest.raises(GenlabError, match="no such file"):
        load_text(tmp_path / "nope.txt")
    with pytest.raises(GenlabError, match="no .txt or .jsonl"):
        load_text(tmp_path)
    jl = tmp_path / "x.jsonl"
    jl.write_text('{"text": "ok"}\n{oops\n', encoding="utf-8")
    with pytest.raises(GenlabError, match="line 2: not JSON"):
        load_text(jl)
    jl.write_text('{"body": "no text field"}\n', encoding="utf-8")
    with pytest.raises(GenlabError, match="line 1: expected"):
        load_text(jl)


def test_split_is_deterministic_and_contiguous():
    text = "abcdefghij" * 10
    train, val = split_text(text, 0.1)
    assert train + val == text and len(val) == 10
    with pytest.raises(GenlabError, match="val-fraction"):
        split_text(text, 1.0)


def test_batches_are_a_function_of_the_index():
    ids = torch.arange(1000)
    b = TokenBatches(ids, block_size=8, batch_size=4, seed=3)
    x1, y1 = b(5)
    x2, y2 = TokenBatches(ids, block_size=8, batch_size=4, seed=3)(5)
    assert torch.equal(x1, x2) and torch.equal(y1[:, :-1], x1[:, 1:])
    assert not torch.equal(b(6)[0], x1)
    assert not torch.equal(TokenBatches(ids, block_size=8, batch_size=4, seed=3, rank=1)(5)[0], x1)
    with pytest.raises(GenlabError, match="needs 10"):
        TokenBatches(torch.arange(9), block_size=8, batch_size=2)
