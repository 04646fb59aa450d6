"""Shared fixtures: small corpora, tiny models, and a CLI runner that captures exit status and output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genlab.cli import main
from genlab.data.tokenizers import CharTokenizer
from genlab.models.base import TrainOptions

# A 200-character text (the "drive a 200-character text to near-zero loss").
TEXT_200 = (
    "In the beginning God created the heaven and the earth. And the earth was without form, and void; "
    "and darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters"
)[:200]

CORPUS = (
    "the quick brown fox jumps over the lazy dog.\n"
    "a stitch in time saves nine; the early bird catches the worm.\n"
    "all that glitters is not gold, and the pen is mightier than the sword.\n"
) * 40


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.set_num_threads(1)  # small tensors: one thread avoids OpenMP spin-waits; pytest -n 2 uses both cores
    yield


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return path


@pytest.fixture
def char_tok() -> CharTokenizer:
    return CharTokenizer.train(CORPUS)


class CLIResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:  # shown when an assertion fails
        return f"CLIResult(code={self.code}, out={self.out[-800:]!r}, err={self.err[-800:]!r})"


@pytest.fixture
def cli(capsys):
    """Run ``genlab ARGS`` in this process; returns exit code, stdout, stderr."""

    def run(*args: str) -> CLIResult:
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse usage errors
            code = e.code if isinstance(e.code, int) else 1
        captured = capsys.readouterr()
        return CLIResult(code, captured.out, captured.err)

    return run


def run_genlab(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run genlab in a fresh process (for signals, torchrun and real exit codes)."""
    return subprocess.run(
        [sys.executable, "-m", "genlab", *map(str, args)], capture_output=True, text=True, timeout=timeout, **kwargs
    )


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict[str, Path]:
    """Tiny checkpoints of each text family, trained once per test session by the library."""
    from genlab.train.run import train

    root = tmp_path_factory.mktemp("runs")
    data = root / "corpus.txt"
    data.write_text(CORPUS, encoding="utf-8")
    small = {"steps": 30, "batch_size": 8, "block_size": 32, "eval_every": 1000, "ckpt_every": 1000}
    runs = {
        "gpt": dict(family="gpt", overrides=small | {"n_layer": 1, "n_head": 2, "n_embd": 32}),
        "lstm": dict(family="lstm", overrides=small | {"n_layer": 1, "n_embd": 16, "n_hidden": 32}),
        "ngram": dict(family="ngram", overrides={"order": 4}),
        "gpt-bpe": dict(
            family="gpt",
            options=TrainOptions(tokenizer="bpe", vocab_size=300),
            overrides=small | {"n_layer": 1, "n_head": 2, "n_embd": 32},
        ),
    }
    out = {}
    for name, kw in runs.items():
        train(data=str(data), out=root / name, quiet=True, **kw)
        out[name] = root / name
    out["data"] = data
    return out


TINY_DIFFUSION = {
    "image_size": 8,
    "base_channels": 16,
    "channel_mult": "1,2",
    "attn_resolutions": "4",
    "num_res_blocks": 1,
    "steps": 20,
    "batch_size": 16,
    "eval_every": 10,
    "sample_every": 20,
    "ckpt_every": 1000,
    "eval_batches": 2,
}


@pytest.fixture(scope="session")
def image_runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny digits models trained once per session: conditional and unconditional diffusion, two classifiers."""
    from genlab.train.run import train

    root = tmp_path_factory.mktemp("image-runs")
    small_clf = {
        "image_size": 8,
        "base_channels": 16,
        "channel_mult": "1,2",
        "steps": 30,
        "batch_size": 32,
        "eval_every": 1000,
        "ckpt_every": 1000,
    }
    runs = {
        "cond": dict(family="diffusion", overrides=TINY_DIFFUSION),
        "uncond": dict(family="diffusion", overrides=TINY_DIFFUSION | {"num_classes": 0}),
        "clf": dict(family="classifier", overrides=small_clf),
        "noisy": dict(family="classifier", overrides=small_clf | {"noisy": True}),
    }
    for name, kw in runs.items():
        train(data="digits", out=root / name, quiet=True, **kw)
    return {name: root / name for name in runs}


@pytest.fixture(scope="session")
def t2i_runs(tmp_path_factory) -> dict[str, Path]:
    """A tiny text-to-image pipeline at 16×16, each part trained for a few steps: features, autoencoder, CLIP,
    and a latent diffusion model on their latents (and a second autoencoder it does not belong with)."""
    from genlab.train.run import train

    root = tmp_path_factory.mktemp("t2i-runs")
    few = {"base_channels": 8, "batch_size": 8, "steps": 6, "eval_every": 3, "ckpt_every": 1000}
    size16 = TrainOptions(size=16)
    train(family="features", data="shapes", options=size16, out=root / "feat", quiet=True, overrides=few)
    ae_kw = dict(
        family="autoencoder", data="shapes", options=size16, quiet=True, parts={"perceptual": str(root / "feat")}
    )
    train(out=root / "ae", overrides=few | {"disc_start": 3}, **ae_kw)
    train(out=root / "ae2", overrides=few | {"disc_start": 3, "seed": 1}, **ae_kw)
    train(
        family="clip",
        data="shapes",
        options=size16,
        out=root / "clip",
        quiet=True,
        overrides=few | {"text_width": 32, "text_layers": 1, "context_length": 24},
    )
    train(
        family="text2image",
        data="shapes",
        out=root / "t2i",
        quiet=True,
        parts={"autoencoder": str(root / "ae"), "text_encoder": str(root / "clip")},
        overrides=few | {"channel_mult": "1", "attn_resolutions": "4", "sample_every": 6},
    )
    return {name: root / name for name in ("feat", "ae", "ae2", "clip", "t2i")}


#: session fixtures that train models: every test using one is slow (`pytest -m "not slow"` skips their setup)
TRAINING_FIXTURES = {"trained", "image_runs", "t2i_runs", "tiny_run"}


def pytest_collection_modifyitems(config, items) -> None:  # noqa: ANN001
    """Tests that use a trained fixture are slow; under pytest-xdist (``-n auto --dist loadgroup``) the tests of one
    fixture run in one worker, so each session fixture is trained once, not once per worker."""
    for item in items:
        used = sorted(TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())))
        if used:
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.xdist_group(used[-1]))
