"""Checkpoints, configs and tokenizers are validated before use: a bad value is one line and exit 2, never a
traceback, a wrong result or tens of GB allocated."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import typing
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import genlab.memory
from genlab.checkpoint import build_model, load_model, read_config
from genlab.config import _parse_value, from_dict
from genlab.errors import GenlabError
from genlab.memory import _cgroup_available, _meminfo_available, available_bytes, check_fits
from genlab.models import FAMILIES, get_family
from genlab.models.gpt import GPTConfig
from genlab.train.config import TrainConfig
from genlab.train.runs import resolve_configs

from .test_cli import one_line_error

ASSETS = Path(__file__).resolve().parents[1] / "src" / "genlab" / "assets"


# --- corrupting a checkpoint: every test goes through corrupt(), the one place that rewrites a file -------------
def checkpoint_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def corrupt(directory: Path, name: str, mutate: Callable[[str], str]) -> None:
    """Rewrite ``directory/name`` as ``mutate(its text)`` (the single place a test damages a checkpoint, so that
    integrity records such as a manifest can be brought along here)."""
    from genlab.checkpoint import write_manifest

    path = directory / name
    path.write_text(mutate(path.read_text(encoding="utf-8")), encoding="utf-8")
    write_manifest(directory)  # vouch for the damaged files: the check under test is the one after the manifest's


def set_json(directory: Path, name: str, change: Callable[[typing.Any], typing.Any]) -> None:
    """``corrupt`` for JSON files: ``change`` edits the parsed value in place or returns a new one."""

    def mutate(text: str) -> str:
        data = json.loads(text)
        new = change(data)
        return json.dumps(data if new is None else new)

    corrupt(directory, name, mutate)


def set_config(**values) -> Callable[[dict], None]:
    return lambda cfg: cfg["config"].update(values)


# --- config.json values of the wrong type or out of range ---------------------------------------------------------
@pytest.mark.parametrize(
    "values, needles",
    [
        ({"n_embd": "abc"}, ["n_embd", '"abc"', "integer"]),
        ({"n_layer": 2.5}, ["n_layer=2.5", "integer"]),
        ({"n_head": [2]}, ["n_head=[2]", "integer"]),
        ({"n_layer": True}, ["n_layer=true", "integer"]),
        ({"bias": 1}, ["bias=1", "true or false"]),
        ({"dropout": "0.1"}, ["dropout", "number"]),
        ({"dropout": float("nan")}, ["dropout=NaN", "finite"]),
        ({"dropout": 1.5}, ["dropout=1.5", "[0, 1)"]),
        ({"block_size": 0}, ["block_size=0", "[1, 65536]"]),
        ({"n_embd": 100000}, ["n_embd=100000", "16384"]),
        ({"vocab_size": -3}, ["vocab_size=-3"]),
    ],
)
def test_bad_config_values_are_one_line(cli, trained, tmp_path, values, needles):
    ckpt = checkpoint_copy(trained["gpt"], tmp_path / "ckpt")
    set_json(ckpt, "config.json", set_config(**values))
    line = one_line_error(cli("generate", "text", "--model", ckpt, "--max-tokens", "5"), *needles)
    assert str(ckpt / "config.json") in line


def test_config_unknown_keys_ignored_and_integral_floats_accepted(cli, trained, tmp_path):
    ckpt = checkpoint_copy(trained["gpt"], tmp_path / "ckpt")
    set_json(ckpt, "config.json", set_config(n_layer=1.0, from_the_future=3))
    r = cli("generate", "text", "--model", ckpt, "--max-tokens", "5", "--seed", "0")
    assert r.code == 0, r


def test_the_saved_trainer_config_is_checked_on_resume(cli, trained, tmp_path):
    run = checkpoint_copy(trained["gpt"], tmp_path / "run")
    set_json(run, "config.json", lambda cfg: cfg["run"]["train"].update(beta1=7))
    r = cli("train", "text", "--data", trained["data"], "--out", run, "--resume", "--steps", "40", "--quiet")
    one_line_error(r, "run.train", "beta1=7", "[0, 1)")


# --- tokenizer.json --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "run, mutate, needles",
    [
        ("gpt", lambda t: t[: len(t) // 2], ["not a valid tokenizer file"]),
        ("gpt", lambda t: "[1, 2, 3]", ["JSON object", "list"]),
        ("gpt", lambda t: json.dumps({"kind": "char", "chars": 5}), ["chars", "list of characters"]),
        ("gpt", lambda t: json.dumps({"kind": "char", "chars": [1, 2]}), ["chars", "list of characters"]),
        ("gpt", lambda t: json.dumps({"kind": "char", "chars": ["a", "a"]}), ["distinct"]),
        ("gpt", lambda t: json.dumps({"kind": "char", "chars": ["ab"]}), ["single characters"]),
        ("gpt", lambda t: json.dumps({"kind": "wordpiece"}), ["unknown tokenizer kind 'wordpiece'"]),
        ("gpt-bpe", lambda t: json.dumps({"kind": "bpe", "hf": [1]}), ['"hf"', "JSON object"]),
        ("gpt-bpe", lambda t: json.dumps({"kind": "bpe", "hf": {"model": 3}}), ["not a valid BPE tokenizer"]),
    ],
)
def test_malformed_tokenizer_is_one_line(cli, trained, tmp_path, run, mutate, needles):
    ckpt = checkpoint_copy(trained[run], tmp_path / "ckpt")
    corrupt(ckpt, "tokenizer.json", mutate)
    line = one_line_error(cli("generate", "text", "--model", ckpt, "--max-tokens", "5"), *needles)
    assert "tokenizer.json" in line


@pytest.mark.parametrize("run", ["gpt", "lstm", "ngram"])
def test_tokenizer_larger_than_the_vocabulary_is_refused(cli, trained, tmp_path, run):
    ckpt = checkpoint_copy(trained[run], tmp_path / "ckpt")
    vocab = read_config(ckpt)["config"]["vocab_size"]
    extra = [chr(0x4E00 + i) for i in range(10)]  # ten characters the corpus never had
    set_json(ckpt, "tokenizer.json", lambda tok: tok["chars"].extend(extra))
    one_line_error(
        cli("generate", "text", "--model", ckpt, "--max-tokens", "5"),
        "tokenizer.json",
        f"{vocab + 10} tokens",
        f"vocab_size={vocab}",
    )


# --- memory: estimated on the meta device before anything is allocated -----------------------------------------
def test_a_model_too_large_for_the_machine_is_refused_before_allocation(cli, trained, tmp_path):
    ckpt = checkpoint_copy(trained["gpt"], tmp_path / "ckpt")
    set_json(ckpt, "config.json", set_config(n_embd=16384, n_layer=64, n_head=16))  # ~800 GB of weights
    one_line_error(cli("generate", "text", "--model", ckpt), "weights needs ~", "GiB", "available")


def test_memory_check_uses_the_available_memory(cli, trained, monkeypatch):
    monkeypatch.setattr(genlab.memory, "available_bytes", lambda: 4096)
    one_line_error(cli("generate", "text", "--model", trained["gpt"]), "needs ~", "~0.0 MiB available")


def test_training_refuses_a_model_that_cannot_fit(cli, trained, tmp_path, monkeypatch):
    monkeypatch.setattr(genlab.memory, "available_bytes", lambda: 100_000)
    out = tmp_path / "run"
    r = cli("train", "text", "--data", trained["data"], "--out", out, "--quiet", "--set", "n_embd=64")
    one_line_error(r, "training this gpt model", "gradients and optimizer state", "available")
    assert not out.exists()


def test_check_fits_and_available_memory(tmp_path):
    check_fits(10, "ten bytes", available=10)
    with pytest.raises(GenlabError, match=r"a tensor needs ~2.0 GiB; the GPU has ~1.0 GiB available"):
        check_fits(2 * 1024**3, "a tensor", available=1024**3, where="the GPU")
    free = available_bytes()
    assert free is None or free > 0
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 100 kB\nMemAvailable:    2048 kB\n")
    assert _meminfo_available(meminfo) == 2048 * 1024
    assert _meminfo_available(tmp_path / "missing") is None
    (tmp_path / "memory.max").write_text("max\n")
    assert _cgroup_available(tmp_path) is None
    (tmp_path / "memory.max").write_text("1000\n")
    (tmp_path / "memory.current").write_text("400\n")
    (tmp_path / "memory.stat").write_text("anon 300\nfile 100\n")
    assert _cgroup_available(tmp_path) == 700  # the file cache counts as free: the kernel gives it back


def _smallest(cls):
    mcfg, _ = resolve_configs(cls, "tiny" if "tiny" in cls.presets else next(iter(cls.presets)), {})
    if getattr(mcfg, "vocab_size", None) == 0:
        mcfg.vocab_size = 300
    return mcfg


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "text2image"])  # text2image: built on parts
def test_meta_estimate_equals_the_real_size(family):
    cls = get_family(family)
    mcfg = _smallest(cls)
    model = cls(mcfg)
    tensors = {id(t): t for t in (*model.parameters(), *model.buffers())}
    assert cls.parameter_bytes(mcfg) == sum(t.numel() * t.element_size() for t in tensors.values())


def test_text2image_estimate_before_its_parts_are_known():
    cls = get_family("text2image")
    assert cls.parameter_bytes(_smallest(cls)) > 0


# --- --set on genlab train --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "setting, needles",
    [
        ("beta1=2", ["beta1=2.0", "[0, 1)"]),
        ("beta2=1", ["beta2=1.0", "[0, 1)"]),
        ("lr=nan", ["--set lr=nan", "finite"]),
        ("lr=inf", ["--set lr=inf", "finite"]),
        ("lr=0", ["lr=0.0", "greater than 0"]),
        ("time_budget=nan", ["--set time_budget=nan", "finite"]),
        ("time_budget=-inf", ["--set time_budget=-inf", "finite"]),
        ("min_lr=inf", ["--set min_lr=inf", "finite"]),
        ("dropout=1", ["dropout=1.0", "[0, 1)"]),
        ("n_embd=100000", ["n_embd=100000", "16384"]),
        ("block_size=1e400", ["block_size=1e400", "int"]),
        ("n_layer=2.5e0", ["n_layer=2.5e0", "int"]),
    ],
)
def test_train_bad_set_is_one_line_and_leaves_no_run(cli, corpus_file, tmp_path, setting, needles):
    out = tmp_path / "run"
    r = cli("train", "text", "--data", corpus_file, "--out", out, "--quiet", "--set", setting)
    one_line_error(r, *needles)
    assert not out.exists()


# --- the validators themselves ------------------------------------------------------------------------------------
def test_from_dict_checks_types_and_names_the_source():
    assert from_dict(GPTConfig, {"n_layer": 2.0, "unknown": 1}).n_layer == 2
    assert from_dict(TrainConfig, {"lr": 1}).lr == 1.0 and isinstance(from_dict(TrainConfig, {"lr": 1}).lr, float)
    with pytest.raises(GenlabError, match=r"^x/config.json: n_layer=2.5 is not an integer$"):
        from_dict(GPTConfig, {"n_layer": 2.5}, source="x/config.json")
    with pytest.raises(GenlabError, match="expected a JSON object"):
        from_dict(GPTConfig, [1, 2], source="x")
    with pytest.raises(GenlabError, match=r"^src: gpt: n_embd=130 must be a multiple of n_head=4$"):
        from_dict(GPTConfig, {"n_embd": 130}, source="src")


def test_parse_value_refuses_non_finite_floats():
    assert _parse_value("lr", "3e-4", float) == 3e-4
    assert _parse_value("steps", "1e6", int) == 1_000_000
    for text in ("nan", "NaN", "inf", "-inf", "1e999"):
        with pytest.raises(GenlabError, match=f"--set lr={text}: must be a finite number"):
            _parse_value("lr", text, float)


def _configs():
    for f in FAMILIES:
        yield f, get_family(f).Config
    yield "train", TrainConfig


def _fresh(name: str, cls: type):
    if name == "text2image":
        return get_family("text2image").Config()
    return _smallest(get_family(name)) if name != "train" else TrainConfig()


@pytest.mark.parametrize("name, cls", list(_configs()), ids=[n for n, _ in _configs()])
def test_every_numeric_field_is_range_checked(name, cls):
    """nan in any float field and 2**63 in any int field (past every ceiling) are refused by validate()."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        bad = {float: math.nan, int: 2**63}.get(hints[f.name])
        if bad is None:
            continue
        cfg = _fresh(name, cls)
        cfg.validate()
        setattr(cfg, f.name, bad)
        with pytest.raises(GenlabError, match=f.name):
            cfg.validate()


def test_every_preset_and_shipped_model_validates():
    for f in FAMILIES:
        cls = get_family(f)
        for preset in cls.presets:
            resolve_configs(cls, preset, {})
    shipped = [d for d in sorted(ASSETS.iterdir()) if (d / "config.json").is_file()]
    assert shipped
    for d in shipped:
        cfg = read_config(d)
        from_dict(TrainConfig, cfg.get("run", {}).get("train", {}), source=str(d))
        build_model(cfg, source=d / "config.json")


@pytest.mark.slow
def test_every_shipped_model_loads():
    for d in sorted(ASSETS.iterdir()):
        if (d / "config.json").is_file():
            assert isinstance(load_model(d), torch.nn.Module)
