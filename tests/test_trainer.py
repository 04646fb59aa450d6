import json
import math
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from genlab.checkpoint import EMA_FILE, load_model
from genlab.data.text import TokenBatches
from genlab.data.tokenizers import CharTokenizer
from genlab.errors import GenlabError
from genlab.models.gpt import GPT, GPTConfig
from genlab.train.trainer import TrainConfig, Trainer, lr_at

from .conftest import CORPUS
from .fuzz_sandbox import snapshot as folder_state


def test_warmup_then_cosine_to_min_lr():
    cfg = TrainConfig(steps=100, lr=1.0, min_lr=0.1, warmup=10)
    lrs = [lr_at(cfg, s, s / 100) for s in range(100)]
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11], strict=True))  # rising during warmup
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))  # then never rising
    assert lrs[10] == pytest.approx(1.0, abs=1e-3)
    assert lr_at(cfg, 100, 1.0) == pytest.approx(0.1)
    assert TrainConfig(lr=2e-3).final_lr == pytest.approx(2e-4)


def _setup(out, steps, seed_model=0):
    tok = CharTokenizer.train(CORPUS)
    torch.manual_seed(seed_model)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16, dropout=0.1), tok)
    cfg = TrainConfig(
        steps=steps,
        batch_size=4,
        accumulate=2,
        warmup=3,
        ema=0.9,
        eval_every=1000,
        ckpt_every=1000,
        log_every=1,
        seed=0,
    )
    batches = TokenBatches(torch.tensor(tok.encode(CORPUS)), block_size=16, batch_size=4, seed=0)
    return model, cfg, batches


def test_interrupted_and_resumed_run_ends_with_identical_weights(tmp_path):
    torch.manual_seed(123)
    model, cfg, batches = _setup(tmp_path / "a", 12)
    Trainer(model, cfg, batches=batches, out_dir=tmp_path / "a", quiet=True).fit()

    torch.manual_seed(123)
    model_b, cfg_b, batches_b = _setup(tmp_path / "b", 12)
    trainer = Trainer(model_b, cfg_b, batches=None, out_dir=tmp_path / "b", quiet=True)

    def interrupting(i):  # "Ctrl-C" arrives while step 6 runs; the step completes, then it saves
        if i == 10:
            trainer._interrupted = True
        return batches_b(i)

    trainer.batches = interrupting
    result = trainer.fit()
    assert result.stopped == "interrupted" and result.step == 6
    assert max(json.loads(line)["step"] for line in (tmp_path / "b" / "metrics.jsonl").open()) == 6

    torch.manual_seed(999)  # a different process state: everything must come from the checkpoint
    model_c, cfg_c, batches_c = _setup(tmp_path / "b", 12, seed_model=7)
    result = Trainer(model_c, cfg_c, batches=batches_c, out_dir=tmp_path / "b", quiet=True).fit(resume=True)
    assert result.step == 12 and result.stopped == "done"
    for (name, a), b in zip(model.state_dict().items(), model_c.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    ema_a, ema_b = load_file(tmp_path / "a" / EMA_FILE), load_file(tmp_path / "b" / EMA_FILE)
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "metrics.jsonl").open()]
    assert steps == list(range(1, 13)), "records after the checkpoint are not duplicated"


def test_ema_weights_are_what_load_returns(tmp_path):
    model, cfg, batches = _setup(tmp_path, 5)
    Trainer(model, cfg, batches=batches, out_dir=tmp_path, quiet=True).fit()
    ema = load_file(tmp_path / EMA_FILE)
    loaded = load_model(tmp_path)
    assert torch.equal(loaded.wte.weight, ema["wte.weight"])
    assert not torch.equal(loaded.wte.weight, model.wte.weight)
    raw = load_model(tmp_path, ema=False)
    assert torch.equal(raw.wte.weight, model.wte.weight)


@pytest.mark.slow
def test_time_budget_stops_early(tmp_path):
    model, cfg, batches = _setup(tmp_path, 10**9)
    cfg.time_budget = 1.0
    start = time.perf_counter()
    result = Trainer(model, cfg, batches=batches, out_dir=tmp_path, quiet=True).fit()
    assert result.stopped == "time" and 0 < result.step
    assert time.perf_counter() - start < 20
    assert (tmp_path / "train_state.pt").is_file()


def test_non_finite_loss_stops_with_a_clear_error_and_saves_nothing(tmp_path):
    model, cfg, batches = _setup(tmp_path, 50)
    cfg.lr, cfg.warmup, cfg.grad_clip = 1e30, 0, 0.0
    before = folder_state(tmp_path)
    with pytest.raises(GenlabError, match=r"loss became (nan|inf).*lower learning rate"):
        Trainer(model, cfg, batches=batches, out_dir=tmp_path, quiet=True).fit()
    assert folder_state(tmp_path) == before  # no checkpoint, no metrics: nothing anywhere in the run folder


def test_bad_trainer_config():
    with pytest.raises(GenlabError, match="steps"):
        TrainConfig(steps=0).validate()
    with pytest.raises(GenlabError, match="precision"):
        TrainConfig(precision="fp8").validate()
    with pytest.raises(GenlabError, match="ema"):
        TrainConfig(ema=1.0).validate()


@pytest.mark.slow
def test_ctrl_c_saves_a_resumable_checkpoint(tmp_path, corpus_file):
    out = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "genlab",
        "train",
        "text",
        "--data",
        str(corpus_file),
        "--out",
        str(out),
        "--steps",
        "100000",
        "--set",
        "n_layer=1",
        "--set",
        "n_embd=16",
        "--set",
        "n_head=2",
        "--set",
        "block_size=16",
        "--set",
        "batch_size=4",
        "--set",
        "ckpt_every=20",
        "--quiet",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "train_state.pt").exists() and time.time() < deadline:
        time.sleep(0.2)
    assert (out / "train_state.pt").exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    state = torch.load(out / "train_state.pt", weights_only=True)
    stopped_at = state["step"]
    assert stopped_at >= 20
    config = json.loads((out / "config.json").read_text())
    assert config["step"] == stopped_at
    # resume with a finite number of steps: continues from the saved step, not from zero
    resumed = subprocess.run(
        [*args[:5], "--out", str(out), "--resume", "--steps", str(stopped_at + 5), "--quiet", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["step"] == stopped_at + 5
    assert math.isfinite(json.loads(resumed.stdout)["held_out"]["bits_per_char"])


def _autoencoder(out, seed_model=0):
    from genlab.models.autoencoder import Autoencoder, AutoencoderConfig

    torch.manual_seed(seed_model)
    cfg = AutoencoderConfig(image_size=8, base_channels=8, channel_mult="1,2", perceptual_weight=0.0, disc_start=2)
    model = Autoencoder(cfg)
    tcfg = TrainConfig(steps=8, batch_size=4, warmup=2, eval_every=1000, ckpt_every=1000, log_every=1)
    images = torch.rand(64, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def batches(i: int) -> tuple:
        g = torch.Generator().manual_seed(i)
        return (images[torch.randint(0, 64, (4,), generator=g)], None)

    return model, tcfg, batches


def test_resume_is_exact_with_two_optimizers(tmp_path):
    """The autoencoder and its critic step with their own AdamW states; both are saved and restored."""
    model, cfg, batches = _autoencoder(tmp_path / "a")
    Trainer(model, cfg, batches=batches, out_dir=tmp_path / "a", quiet=True).fit()
    state = torch.load(tmp_path / "a" / "train_state.pt", weights_only=True)
    assert set(state["optimizers"]) == {"model", "critic"} and state["optimizers"]["critic"]["state"]
    logged = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").open()]
    assert "loss_critic" in logged[-1] and "loss_critic" not in logged[0]  # the critic starts after disc_start

    model_b, cfg_b, batches_b = _autoencoder(tmp_path / "b")
    trainer = Trainer(model_b, cfg_b, batches=None, out_dir=tmp_path / "b", quiet=True)

    def interrupting(i):
        if i == 4:
            trainer._interrupted = True
        return batches_b(i)

    trainer.batches = interrupting
    assert trainer.fit().step == 5
    model_c, cfg_c, batches_c = _autoencoder(tmp_path / "b", seed_model=7)
    assert Trainer(model_c, cfg_c, batches=batches_c, out_dir=tmp_path / "b", quiet=True).fit(resume=True).step == 8
    for (name, a), b in zip(model.state_dict().items(), model_c.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
