import math

import pytest
import torch

from genlab.data.tokenizers import CharTokenizer
from genlab.errors import GenlabError
from genlab.models.gpt import GPT, GPTConfig
from genlab.sampling.text import generate

from .conftest import CORPUS, TEXT_200


def tiny_gpt(tok, **cfg) -> GPT:
    torch.manual_seed(0)
    c = dict(vocab_size=tok.vocab_size, block_size=128, n_layer=2, n_head=2, n_embd=32) | cfg
    return GPT(GPTConfig(**c), tok).eval()


def test_kv_cache_logits_match_full_recompute_over_100_tokens(char_tok):
    model = tiny_gpt(char_tok)
    prompt = torch.tensor([char_tok.encode("the quick")])
    state = model.init_state(1)
    logits, state = model.step(prompt, state)
    seq, cached = prompt, []
    with torch.no_grad():
        for _ in range(100):
            cached.append(logits)
            nxt = logits.argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
            logits, state = model.step(nxt, state)
        full = model.logits(seq)[0]
    n = prompt.shape[1]
    for i, c in enumerate(cached):
        torch.testing.assert_close(c[0], full[n - 1 + i], atol=1e-5, rtol=0)


def test_chunked_prefill_after_cache_matches_full(char_tok):
    model = tiny_gpt(char_tok)
    ids = torch.tensor([char_tok.encode("the quick brown fox jumps")])
    state = model.init_state(1)
    with torch.no_grad():
        model.step(ids[:, :10], state)
        chunk_logits = model.lm_head(model.hidden(ids[:, 10:], state.caches))
        full = model.logits(ids)
    torch.testing.assert_close(chunk_logits, full[:, 10:], atol=1e-5, rtol=0)


def test_generation_past_the_context_window(char_tok):
    model = tiny_gpt(char_tok, block_size=16)
    g = torch.Generator().manual_seed(0)
    cached = generate(model, "the", max_tokens=60, temperature=0, generator=g)
    assert cached.new_tokens == 60
    uncached = generate(model, "the", max_tokens=60, temperature=0, cache=False)
    # identical while the window is not full (3 prompt + 13 tokens)
    assert cached.texts[0][:13] == uncached.texts[0][:13]


def test_gpt2_initialization(char_tok):
    model = tiny_gpt(char_tok, n_layer=4, n_embd=64)
    assert model.lm_head.weight is model.wte.weight
    assert model.blocks[0].attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert model.blocks[0].mlp.proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(8), rel=0.1)


def test_token_logprobs_short_and_sliding(char_tok):
    model = tiny_gpt(char_tok, block_size=32)
    ids = torch.tensor(char_tok.encode(CORPUS[:300]))
    lp = model.token_logprobs(ids)
    assert lp.shape == (299,) and torch.isfinite(lp).all() and (lp < 0).all()
    # inside the first window the sliding evaluation equals one full forward pass
    direct = torch.log_softmax(model.logits(ids[None, :32]), -1)[0, :-1].gather(-1, ids[1:32, None])[:, 0]
    torch.testing.assert_close(lp[:31], direct, atol=1e-5, rtol=0)
    # a later token is scored by the window that starts at the last stride with ≥ 16 tokens of context
    p = 200
    s = max(start for start in range(0, 300 - 32 + 1, 16) if p - start >= 16)
    ref = torch.log_softmax(model.logits(ids[None, s : s + 32]), -1)[0, p - s - 1, ids[p]]
    torch.testing.assert_close(lp[p - 1], ref, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_drives_200_character_text_to_near_zero_loss():
    tok = CharTokenizer.train(TEXT_200)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=2, n_head=2, n_embd=64), tok)
    ids = torch.tensor(tok.encode(TEXT_200))
    x = torch.stack([ids[i : i + 64] for i in range(0, 200 - 64, 8)])
    y = torch.stack([ids[i + 1 : i + 65] for i in range(0, 200 - 64, 8)])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss = model.loss((x, y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


def test_bad_configs():
    with pytest.raises(GenlabError, match="multiple of n_head"):
        GPTConfig(n_embd=30, n_head=4).validate()
    with pytest.raises(GenlabError, match="vocab_size"):
        GPT(GPTConfig())
    with pytest.raises(GenlabError, match="dropout"):
        GPTConfig(dropout=1.5).validate()
