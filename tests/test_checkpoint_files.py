"""Checkpoints as whole folders: the manifest readers check, the swap a crash cannot tear, folders never clobbered."""

import json
import os
import shutil

import pytest
import torch

import genlab.io
from genlab.checkpoint import export_checkpoint, load_model, save_model, write_manifest
from genlab.data.tokenizers import CharTokenizer
from genlab.errors import GenlabError
from genlab.models.gpt import GPT, GPTConfig
from genlab.train.trainer import TrainConfig, Trainer

from .conftest import CORPUS
from .test_cli import one_line_error


def tiny_gpt(seed: int) -> GPT:
    tok = CharTokenizer.train(CORPUS)
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16), tok)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_manifest_lists_every_file_and_readers_refuse_a_mismatch(tmp_path):
    d = save_model(tiny_gpt(0), tmp_path / "ckpt", step=3)
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["step"] == 3
    assert {f["name"] for f in manifest["files"]} == {"config.json", "model.safetensors", "tokenizer.json"}
    assert all(len(f["sha256"]) == 64 and f["size"] > 0 for f in manifest["files"])
    load_model(d)
    weights = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(weights[:-1] + bytes([weights[-1] ^ 1]))  # same size, one bit off
    with pytest.raises(GenlabError, match=r"ckpt: model.safetensors does not match its SHA-256"):
        load_model(d)
    (d / "model.safetensors").write_bytes(weights[:-8])
    with pytest.raises(GenlabError, match=r"model.safetensors has \d+ bytes, manifest.json says"):
        load_model(d)
    (d / "model.safetensors").write_bytes(weights)
    (d / "tokenizer.json").unlink()
    with pytest.raises(GenlabError, match="tokenizer.json is missing"):
        load_model(d)
    (d / "manifest.json").unlink()
    with pytest.raises(GenlabError, match=r"ckpt: no manifest.json.*write_manifest"):
        load_model(d)
    (d / "manifest.json").write_text("{not json")
    with pytest.raises(GenlabError, match="not a valid manifest"):
        load_model(d)


def test_write_manifest_vouches_for_a_folder_and_leaves_run_files_and_cards_out(tmp_path):
    d = save_model(tiny_gpt(0), tmp_path / "ckpt")
    (d / "manifest.json").unlink()
    (d / "metrics.jsonl").write_text("{}\n")
    (d / "MODEL_CARD.md").write_text("# card\n")
    write_manifest(d)
    assert {f["name"] for f in json.loads((d / "manifest.json").read_text())["files"]} == {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    }
    (d / "metrics.jsonl").write_text("{}\n{}\n")  # the log grows; the checkpoint stays valid
    load_model(d)


def test_shipped_models_have_manifests():
    from genlab.assets import DEFAULTS, ROOT, default_model

    for task, folder in DEFAULTS.items():
        assert (ROOT / folder / "manifest.json").is_file(), folder
        genlab.io.verify_manifest(default_model(task))


def _run(out, seed: int, steps: int = 3) -> GPT:
    model = tiny_gpt(seed)
    tok = model.tokenizer
    from genlab.data.text import TokenBatches

    batches = TokenBatches(torch.tensor(tok.encode(CORPUS)), block_size=16, batch_size=4, seed=seed)
    cfg = TrainConfig(steps=steps, batch_size=4, warmup=1, ema=0.9, eval_every=1000, ckpt_every=1, log_every=1)
    Trainer(model, cfg, batches=batches, out_dir=out, quiet=True).fit()
    return model


def test_trainer_saves_carry_the_run_files_over(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    _run(out, 0, steps=4)
    (out / "samples").mkdir()
    (out / "samples" / "step_000004.png").write_bytes(b"png")
    (out / "notes.txt").write_text("mine")
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").open()]
    assert steps == [1, 2, 3, 4]
    model = load_model(out)
    save_model(model, out, step=4)  # genlab.save over a run keeps what is not the checkpoint
    assert (out / "samples" / "step_000004.png").read_bytes() == b"png" and (out / "notes.txt").read_text() == "mine"
    assert not (out / "ema.safetensors").exists() and not (out / "train_state.pt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"], "no hidden leftovers beside the folder"


def test_export_into_a_run_folder_replaces_it_whole(tmp_path):
    """Regression: export over a run left its ema.safetensors, which loading prefers over the exported weights."""
    run, other = tmp_path / "run", tmp_path / "other"
    _run(run, 0)
    _run(other, 1)
    with pytest.raises(GenlabError, match="already holds a gpt checkpoint; replace it with --force"):
        export_checkpoint(other, run)
    export_checkpoint(other, run, force=True)
    names = ["config.json", "manifest.json", "model.safetensors", "tokenizer.json"]
    assert sorted(p.name for p in run.iterdir()) == names, "no ema.safetensors, training state, log or samples left"
    assert same_weights(load_model(run), load_model(other))


def test_export_refuses_what_it_did_not_write(tmp_path):
    src = save_model(tiny_gpt(0), tmp_path / "src")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    with pytest.raises(GenlabError, match="holds files that are not a genlab checkpoint"):
        export_checkpoint(src, tmp_path / "mine", force=True)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "x"
    (tmp_path / "file").write_text("x")
    with pytest.raises(GenlabError, match="--out .*file: is a file"):
        export_checkpoint(src, tmp_path / "file", force=True)
    with pytest.raises(GenlabError, match="is a file, not a folder"):
        export_checkpoint(src, tmp_path / "file" / "sub")
    lstm = tmp_path / "lstm"
    lstm.mkdir()
    (lstm / "config.json").write_text(json.dumps({"family": "lstm", "config": {}}))
    with pytest.raises(GenlabError, match="holds a lstm checkpoint, not gpt"):
        export_checkpoint(src, lstm, force=True)
    (tmp_path / "empty").mkdir()
    export_checkpoint(src, tmp_path / "empty")
    load_model(tmp_path / "empty")


# --- a crash at every step of a save -------------------------------------------------------------------------------
class Died(BaseException):
    """The process is gone: from the failing step on, nothing it does reaches the disk."""


STEPS = [(os, "rename"), (os, "replace"), (os, "fsync"), (os, "link"), (shutil, "rmtree"), (genlab.io, "exchange")]


def _count_and_kill(monkeypatch, kill_at: int | None) -> list[str]:
    calls: list[str] = []
    dead = []
    for owner, name in STEPS:
        real = getattr(owner, name)

        def step(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            if dead or (kill_at is not None and len(calls) - 1 == kill_at):
                dead.append(True)
                raise Died(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(owner, name, step)
    return calls


@pytest.mark.parametrize("swap", ["exchange", "rename"])
def test_a_crash_at_any_step_of_a_save_leaves_the_old_or_the_new_checkpoint(tmp_path, monkeypatch, swap):
    if swap == "exchange" and genlab.io._RENAMEAT2 is None:
        pytest.skip("no renameat2 here")
    if swap == "rename":
        monkeypatch.setattr(genlab.io, "_RENAMEAT2", None)
    old, new = tiny_gpt(0), tiny_gpt(1)
    d = tmp_path / "run"

    def fresh() -> None:
        shutil.rmtree(tmp_path)
        tmp_path.mkdir()
        save_model(old, d, step=1)
        (d / "metrics.jsonl").write_text('{"step": 1}\n')

    fresh()
    with monkeypatch.context() as m:
        calls = _count_and_kill(m, None)
        save_model(new, d, step=2)
    assert len(calls) > 8, calls
    seen = set()
    for k in range(len(calls)):
        fresh()
        with monkeypatch.context() as m:
            _count_and_kill(m, k)
            with pytest.raises(Died):
                save_model(new, d, step=2)
        for writer in (False, True):  # a reader after the crash, then the next save's recovery
            if writer:
                genlab.checkpoint.recover(d, writer=True)
                assert sorted(p.name for p in tmp_path.iterdir()) == ["run"], (k, calls[k])
            loaded = load_model(d)
            step = json.loads((d / "manifest.json").read_text())["step"]
            assert same_weights(loaded, old if step == 1 else new), (k, calls[k])
            assert (d / "metrics.jsonl").read_text() == '{"step": 1}\n'
            seen.add(step)
    assert seen == {1, 2}


# --- the CLI ---------------------------------------------------------------------------------------------------------
TINY = ["--set", "n_layer=1", "--set", "n_embd=16", "--set", "n_head=2", "--set", "block_size=16"]
TINY += ["--set", "batch_size=4", "--set", "eval_batches=1", "--quiet"]


def test_train_force_replaces_a_run_of_the_same_family_only(cli, tmp_path, corpus_file):
    out = tmp_path / "run"
    assert cli("train", "text", "--data", corpus_file, "--out", out, "--steps", "3", *TINY).code == 0
    one_line_error(cli("train", "text", "--data", corpus_file, "--out", out, "--steps", "2", *TINY), "--force")
    r = cli("train", "text", "--data", corpus_file, "--out", out, "--steps", "2", "--force", "--set=log_every=1", *TINY)
    assert r.code == 0, r
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").open()][-1] == 2
    assert json.loads((out / "manifest.json").read_text())["step"] == 2
    one_line_error(cli("train", "text", "--out", out, "--resume", "--force"), "choose one")
    r = cli("train", "text", "--model", "lstm", "--data", corpus_file, "--out", out, "--force", *TINY)
    one_line_error(r, "holds a gpt checkpoint, not lstm")
    (tmp_path / "file").write_text("x")
    one_line_error(cli("train", "text", "--data", corpus_file, "--out", tmp_path / "file", *TINY), "is a file")
    one_line_error(cli("train", "text", "--data", corpus_file, "--out", tmp_path / "file" / "x", *TINY), "not a folder")
    assert "--force" in cli("train", "--help").out and "--force" in cli("export", "--help").out


def test_a_failed_train_leaves_nothing_behind_but_never_removes_your_folder(cli, tmp_path, corpus_file):
    short = tmp_path / "short.txt"
    short.write_text("just a few words")
    one_line_error(cli("train", "text", "--data", short, "--out", tmp_path / "new" / "run", *TINY), "block_size")
    assert not (tmp_path / "new").exists()
    nan = ["--set", "lr=1e30", "--set", "warmup=0", "--set", "grad_clip=0", "--steps", "5"]
    one_line_error(cli("train", "text", "--data", corpus_file, "--out", tmp_path / "nan", *nan, *TINY))
    assert not (tmp_path / "nan").exists()
    (tmp_path / "yours").mkdir()
    one_line_error(cli("train", "text", "--data", short, "--out", tmp_path / "yours", *TINY), "block_size")
    assert (tmp_path / "yours").is_dir()


def test_train_into_a_place_nobody_can_write_is_one_line(cli, tmp_path, corpus_file):
    """/proc refuses new folders even to root (tests may run as root, where a read-only folder is writable)."""
    r = cli("train", "text", "--data", corpus_file, "--out", "/proc/genlab-run", *TINY)
    one_line_error(r, "cannot write")
    assert not os.path.exists("/proc/genlab-run")
