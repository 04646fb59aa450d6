import pytest
import torch

from genlab.errors import GenlabError
from genlab.sampling.text import _StopWatch, check_controls, filter_logits


def test_top_k_keeps_k_best():
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0]])
    out = filter_logits(logits, top_k=2)
    assert torch.isfinite(out).tolist() == [[False, True, True, False]]


def test_top_p_keeps_smallest_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    out = filter_logits(probs.log(), top_p=0.8)
    assert torch.isfinite(out).tolist() == [[True, True, False, False]]
    out = filter_logits(probs.log(), top_p=0.81)
    assert torch.isfinite(out).tolist() == [[True, True, True, False]]
    out = filter_logits(probs.log(), top_p=0.1)  # the most likely token always stays
    assert torch.isfinite(out).tolist() == [[True, False, False, False]]


def test_temperature_scales():
    logits = torch.tensor([[1.0, 2.0]])
    assert filter_logits(logits, temperature=0.5).tolist() == [[2.0, 4.0]]


def test_a_tiny_temperature_is_greedy_never_nan():
    logits = torch.tensor([[1.0, 3.0, -2.0]])
    for t in (1e-30, 1e-45, 1e-320):
        assert filter_logits(logits, temperature=t).softmax(-1).tolist() == [[0.0, 1.0, 0.0]]


def test_stop_string_spanning_tokens_is_held_back_and_cut():
    w = _StopWatch(["END"])
    emitted = w.update("abcE")
    assert emitted == "ab"  # "cE" might be the start of "END": held back
    emitted += w.update("abcEN")
    assert emitted == "abc"  # "EN" still might be
    emitted += w.update("abcENDxyz")
    assert w.done and w.text == "abc" and emitted == "abc"


def test_incomplete_utf8_is_not_emitted():
    w = _StopWatch([])
    assert w.update("ok\ufffd") == "ok"
    assert w.update("ok\u00e9") == "\u00e9"


@pytest.mark.parametrize(
    "args", [dict(temperature=-1), dict(top_k=-1), dict(top_p=0.0), dict(top_p=1.5), dict(max_tokens=-3)]
)
def test_bad_controls(args):
    values = dict(temperature=1.0, top_k=0, top_p=1.0, max_tokens=10) | args
    with pytest.raises(GenlabError):
        check_controls(**values)
