import pytest
import torch

from genlab.data.tokenizers import CharTokenizer
from genlab.models.rnn import LSTMLM, LSTMConfig

from .conftest import CORPUS, TEXT_200


def tiny_lstm(tok, **cfg) -> LSTMLM:
    torch.manual_seed(0)
    c = dict(vocab_size=tok.vocab_size, n_layer=2, n_embd=16, n_hidden=32) | cfg
    return LSTMLM(LSTMConfig(**c), tok).eval()


def test_step_by_step_state_equals_full_sequence(char_tok):
    model = tiny_lstm(char_tok)
    ids = torch.tensor([char_tok.encode("the quick brown fox")])
    with torch.no_grad():
        full = model.logits(ids)[0]
        state = model.init_state(1)
        logits, state = model.step(ids[:, :5], state)
        torch.testing.assert_close(logits[0], full[4], atol=1e-5, rtol=0)
        for t in range(5, ids.shape[1]):
            logits, state = model.step(ids[:, t : t + 1], state)
            torch.testing.assert_close(logits[0], full[t], atol=1e-5, rtol=0)


def test_token_logprobs_carry_state_across_chunks(char_tok):
    model = tiny_lstm(char_tok)
    ids = torch.tensor(char_tok.encode(CORPUS[:1500]))
    lp = model.token_logprobs(ids, chunk=100)  # one stream, 15 chunks
    with torch.no_grad():
        direct = torch.log_softmax(model.logits(ids[None, :-1]), -1)[0].gather(-1, ids[1:, None])[:, 0]
    torch.testing.assert_close(lp, direct, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_drives_200_character_text_to_near_zero_loss():
    tok = CharTokenizer.train(TEXT_200)
    torch.manual_seed(0)
    model = LSTMLM(LSTMConfig(vocab_size=tok.vocab_size, n_layer=1, n_embd=32, n_hidden=128), tok)
    ids = torch.tensor(tok.encode(TEXT_200))
    x, y = ids[None, :-1], ids[None, 1:]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        loss = model.loss((x, y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
