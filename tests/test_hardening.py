"""Issue "Hardening": a user's mistake is one line and exit 2, never a traceback; numbers are checked as numbers;
outputs never clobber inputs; images enter under one pixel limit; internal errors still say they are bugs."""

from __future__ import annotations

import argparse
import json
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import genlab.cli.common as common
import genlab.memory as memory
from genlab.cli import build_parser
from genlab.data.images import write_image

from .fuzz_sandbox import snapshot

GiB = 2**30


def one_line_error(r, *needles: str) -> None:
    """Exit 2, no traceback, and exactly one line on stderr that starts with 'genlab: error:' and names each needle."""
    assert r.code == 2, r
    assert "Traceback" not in r.err, r
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("genlab: error:"), r
    for needle in needles:
        assert needle in lines[0], r


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that declares width×height but holds almost no data (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)))
    return path


@pytest.fixture
def small_machine(monkeypatch):
    """A machine with 8 GiB free, whatever this one has: memory refusals do not depend on the test machine."""
    monkeypatch.setattr(memory, "available_bytes", lambda: 8 * GiB)


# --- numbers ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, option",
    [
        ("generate text --temperature nan", "--temperature"),
        ("generate text --temperature inf", "--temperature"),
        ("generate text --top-p nan", "--top-p"),
        ("generate text --seed 1000000000000000000000000", "--seed"),
        ("generate text --seed -1", "--seed"),
        ("generate image --guidance nan", "--guidance"),
        ("generate image --guidance -inf", "--guidance"),
        ("generate image --strength nan", "--strength"),
        ("generate image --eta inf", "--eta"),
        ("generate image --n 0", "--n"),
        ("train text --data kjv --out {d}/run --time-budget nan", "--time-budget"),
        ("train text --data kjv --out {d}/run --val-fraction 1", "--val-fraction"),
        ("edit denoise --image astronaut --out {d}/x.png --lr nan", "--lr"),
        ("edit denoise --image astronaut --out {d}/x.png --average 1", "--average"),
        ("segment astronaut --all --pred-iou-thresh nan --json", "--pred-iou-thresh"),
        ("eval text2image DIR --data shapes --guidance-scales 0,nan", "--guidance-scales"),
        ("eval image DIR --data digits --features classifier,nope", "--features"),
    ],
)
def test_non_finite_and_out_of_range_numbers_are_refused_by_name(cli, tmp_path, args, option):
    before = snapshot(tmp_path)
    r = cli(*args.format(d=tmp_path).split())
    one_line_error(r, f"argument {option}")
    assert snapshot(tmp_path) == before  # refused before anything was written


@pytest.mark.parametrize("text", ["nan,nan", "inf,3", "1,-inf"])
def test_a_point_must_be_finite(cli, text):
    one_line_error(cli("segment", "astronaut", "--point", text, "--json"), "--point", "finite")


def test_a_box_must_be_finite(cli):
    one_line_error(cli("segment", "astronaut", "--box", "0,0,nan,10", "--json"), "--box", "finite")


@pytest.mark.parametrize(
    "args, option",
    [
        ("generate text --n 1000000 --max-tokens 200", "--n 1000000"),
        ("generate image --n 1000000000", "1000000000 images"),
        ("generate image --n 1 --scale 100000", "--scale 100000"),
        ("generate image --interpolate 1,2 --frames 100000000", "100000000 images"),
    ],
)
def test_requests_larger_than_memory_are_refused_with_the_estimate(cli, small_machine, args, option):
    r = cli(*args.split())
    one_line_error(r, option, "GiB", "8.0 GiB available")


def test_the_memory_estimate_lets_ordinary_requests_through(cli, small_machine, tmp_path):
    r = cli("generate", "text", "--n", "4", "--max-tokens", "5", "--seed", "0", "--json")
    assert r.code == 0 and len(json.loads(r.out)["samples"]) == 4, r


def test_ints_beyond_64_bits_are_refused_everywhere(cli):
    """Every int option goes through the same type: a plain `type=int` cannot slip through."""
    r = cli("segment", "astronaut", "--points-per-side", str(10**30), "--all", "--json")
    one_line_error(r, "--points-per-side", "too large")


def test_every_numeric_option_is_checked():
    """No option of any verb parses floats or ints with Python's bare float/int (which accept nan, inf, 10**30)."""
    unchecked = []

    def walk(parser: argparse.ArgumentParser, prog: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{prog} {name}")
            elif action.type in (float, int):
                unchecked.append(f"{prog} {action.option_strings}")

    walk(build_parser(), "genlab")
    assert not unchecked
    fallback = common.GenlabParser(prog="genlab x")  # an option added without a range still refuses NaN, inf, 10**30
    fallback.add_argument("--f", type=float)
    fallback.add_argument("--i", type=int)
    assert fallback.parse_args(["--f", "0.5", "--i", "-3"]) == argparse.Namespace(f=0.5, i=-3)
    for bad in (["--f", "nan"], ["--f", "-inf"], ["--i", str(10**30)]):
        with pytest.raises(SystemExit):
            fallback.parse_args(bad)


# --- zero is a value ----------------------------------------------------------------------------------------
def test_no_zero_or_empty_value_is_read_as_not_given():
    """`args.x or default` replaces a user's 0 or "" by the default: no verb may do it for an option that takes a
    number or a string (None → "" / () / [] is allowed: those are the same value)."""
    parser = build_parser()
    dests = set()

    def walk(p: argparse.ArgumentParser) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)
            elif action.nargs != 0 and action.dest != "help":
                dests.add(action.dest)

    walk(parser)
    src = Path(__file__).parents[1] / "src" / "genlab"
    offenders = []
    for path in src.rglob("*.py"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            pattern = r"(?:args\.(\w+)|getattr\(args, \"(\w+)\"[^)]*\)|cfg\.(\w+)) or (?!\"\"|\(\)|\[\])"
            for m in re.finditer(pattern, line):
                if m.group(3) or (m.group(1) or m.group(2)) in dests:  # any config field: 0 is a value there too
                    offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert not offenders


def test_temperature_zero_is_greedy_and_max_tokens_zero_is_the_prompt(cli):
    a = cli("generate", "text", "--prompt", "And", "--temperature", "0", "--seed", "1", "--max-tokens", "20", "--json")
    b = cli("generate", "text", "--prompt", "And", "--temperature", "0", "--seed", "2", "--max-tokens", "20", "--json")
    assert a.code == b.code == 0 and json.loads(a.out)["samples"] == json.loads(b.out)["samples"]
    c = cli("generate", "text", "--prompt", "And", "--max-tokens", "0", "--json")
    assert c.code == 0 and json.loads(c.out)["samples"] == [""], c


def test_train_val_fraction_zero_trains_on_everything(cli, corpus_file, tmp_path):
    r = cli("train", "text", "--data", corpus_file, "--model", "ngram", "--val-fraction", "0",
            "--out", tmp_path / "run", "--json", "--quiet")  # fmt: skip
    assert r.code == 0, r
    run = json.loads((tmp_path / "run" / "config.json").read_text())["run"]
    assert run["val_fraction"] == 0


# --- outputs ------------------------------------------------------------------------------------------------
@pytest.fixture
def photo(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    write_image(tmp_path / "photo.png", rng.random((40, 48, 3)).astype(np.float32))
    hole = np.zeros((40, 48), np.float32)
    hole[10:20, 10:20] = 1
    write_image(tmp_path / "hole.png", hole)
    return tmp_path


@pytest.mark.parametrize(
    "args",
    [
        "edit inpaint --image {d}/photo.png --mask {d}/hole.png --method telea --out {d}/hole.png",
        "edit inpaint --image {d}/photo.png --mask {d}/hole.png --method telea --out {d}/photo.png",
        "edit nnf --a {d}/photo.png --b {d}/hole.png --out {d}/x.png --reconstruction {d}/photo.png",
        "segment {d}/photo.png --point 3,3 --out {d}/photo.png",
    ],
)
def test_an_output_is_never_one_of_the_inputs(cli, photo, args):
    before = snapshot(photo)
    r = cli(*args.format(d=photo).split())
    one_line_error(r, "never overwrites an input")
    assert snapshot(photo) == before


def test_outputs_that_cannot_be_written_are_one_line(cli, photo):
    r = cli("generate", "text", "--max-tokens", "3", "--out", photo / "photo.png" / "x.txt")
    one_line_error(r, "is a file, not a folder")
    r = cli("generate", "text", "--max-tokens", "3", "--out", photo)
    one_line_error(r, "is a folder")
    r = cli("generate", "text", "--max-tokens", "3", "--out", "")
    one_line_error(r, "--out is empty")


def test_nnf_exact_refuses_before_writing_anything(cli, tmp_path):
    rng = np.random.default_rng(0)
    write_image(tmp_path / "a.png", rng.random((400, 400, 3)).astype(np.float32))
    before = snapshot(tmp_path)
    r = cli("edit", "nnf", "--a", tmp_path / "a.png", "--b", tmp_path / "a.png", "--patch", "3", "--exact",
            "--out", tmp_path / "field.png")  # fmt: skip
    one_line_error(r, "--exact")
    assert snapshot(tmp_path) == before


# --- images -------------------------------------------------------------------------------------------------
def test_a_decompression_bomb_is_one_line_naming_max_pixels(cli, tmp_path):
    bomb = png_header(tmp_path / "bomb.png", 20000, 20000)
    one_line_error(cli("segment", bomb, "--point", "1,1", "--json"), "bomb.png", "--max-pixels")
    one_line_error(cli("classify", "image", bomb, "--labels", "a,b"), "bomb.png", "--max-pixels")


def test_an_image_over_half_the_limit_is_a_warning_not_silence(cli, tmp_path):
    big = png_header(tmp_path / "big.png", 10000, 9000)  # 90 MP: Pillow's own warning zone
    one_line_error(cli("segment", big, "--point", "1,1", "--json"), "10000×9000 = 90,000,000 pixels", "--max-pixels")
    r = cli("segment", big, "--point", "1,1", "--json", "--max-pixels", "100000000")
    assert "genlab: warning:" in r.err and "a large image" in r.err, r
    assert r.code == 2 and "Traceback" not in r.err  # its data is truncated: not a readable image


def test_training_folders_enter_under_the_same_limit(tmp_path):
    from genlab.data.image_data import load_image_set
    from genlab.errors import GenlabError

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        write_image(folder / f"{i}.png", np.full((8, 8), 0.5, np.float32))
    png_header(folder / "bomb.png", 20000, 20000)
    with pytest.raises(GenlabError, match="bomb.png.*--max-pixels"):
        load_image_set(str(folder), 8, strict=True)


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n" + bytes(range(256))])
def test_empty_and_binary_images_are_named(cli, tmp_path, content):
    path = tmp_path / "x.png"
    path.write_bytes(content)
    one_line_error(cli("segment", path, "--point", "1,1", "--json"), "x.png", "not a readable image")


# --- the boundary -------------------------------------------------------------------------------------------
def test_an_io_error_is_one_line(cli, monkeypatch, tmp_path):
    import genlab.cli.generate as generate

    def fail(args):
        raise PermissionError(13, "Permission denied", str(tmp_path / "somewhere"))

    monkeypatch.setattr(generate, "_generate_text", fail)
    one_line_error(cli("generate", "text"), "somewhere: Permission denied")


def test_running_out_of_memory_is_one_line(cli, monkeypatch):
    import genlab.cli.generate as generate

    def fail(args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: 10 GB")

    monkeypatch.setattr(generate, "_generate_text", fail)
    one_line_error(cli("generate", "text"), "out of memory")


def test_an_internal_error_shows_its_traceback_and_asks_for_a_report(cli, monkeypatch):
    import genlab.cli.generate as generate

    def bug(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(generate, "_generate_text", bug)
    r = cli("generate", "text")
    assert r.code == 1 and "Traceback" in r.err and "ZeroDivisionError: a bug" in r.err, r
    assert "This is a bug in genlab" in r.err.splitlines()[-1]


def test_json_output_never_holds_nan():
    text = common.json_text({"psnr": float("inf"), "x": [float("nan"), 1.5], "ok": 2.0})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {"psnr": None, "x": [None, 1.5], "ok": 2.0}


# --- run folders ------------------------------------------------------------------------------------------------
def test_train_into_a_folder_of_your_own_files_is_refused_and_leaves_them(cli, tmp_path, corpus_file):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "tokenizer.json").write_text("my notes")
    (mine / "metrics.jsonl").write_text("my log\n")
    before = snapshot(mine)
    one_line_error(cli("train", "text", "--data", corpus_file, "--model", "ngram", "--out", mine), "--out")
    assert snapshot(mine) == before


def test_resume_trims_the_metrics_log_atomically(tmp_path, monkeypatch):
    """The trimmed log is a new file renamed in: a crash while trimming keeps the old log whole."""
    import genlab.io as gio
    from genlab.train.trainer import METRICS_FILE, Trainer

    log = tmp_path / METRICS_FILE
    log.write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (10, 20, 30)))
    trainer = Trainer.__new__(Trainer)
    trainer.out, trainer.dist = tmp_path, type("D", (), {"is_main": True})()

    def crash(src, dst):
        raise OSError("killed")

    monkeypatch.setattr(gio.os, "replace", crash)
    with pytest.raises(OSError):
        trainer._trim_metrics(20)
    assert [json.loads(ln)["step"] for ln in log.read_text().splitlines()] == [10, 20, 30]
    assert [p.name for p in tmp_path.iterdir()] == [METRICS_FILE]  # no temporary file left
    monkeypatch.undo()
    trainer._trim_metrics(20)
    assert [json.loads(ln)["step"] for ln in log.read_text().splitlines()] == [10, 20]


def test_interpolation_ends_enter_under_the_pixel_limit(cli, tmp_path):
    bomb = png_header(tmp_path / "bomb.png", 20000, 20000)
    before = snapshot(tmp_path)
    r = cli("generate", "image", "--interpolate", f"{bomb},{bomb}", "--frames", "2", "--out", tmp_path / "m.png")
    one_line_error(r, "bomb.png", "--max-pixels")
    assert snapshot(tmp_path) == before


def test_a_training_set_that_cannot_fit_is_refused_before_loading(cli, small_machine, tmp_path):
    r = cli("train", "image", "--data", "digits", "--size", "4096", "--steps", "1", "--out", tmp_path / "run")
    one_line_error(r, "1,797 images of 4096×4096", "8.0 GiB available")
    assert not (tmp_path / "run").exists()


def test_nnf_default_reconstruction_never_overwrites_an_input(cli, photo):
    (photo / "x-reconstruction.png").write_bytes((photo / "photo.png").read_bytes())
    before = snapshot(photo)
    r = cli("edit", "nnf", "--a", photo / "x-reconstruction.png", "--b", photo / "hole.png", "--out", photo / "x.png")
    one_line_error(r, "never overwrites an input")
    assert snapshot(photo) == before


def test_an_input_inside_an_output_folder_is_refused(cli, photo):
    (photo / "seg").mkdir()
    (photo / "seg" / "overlay.png").write_bytes((photo / "photo.png").read_bytes())
    before = snapshot(photo)
    r = cli("segment", photo / "seg" / "overlay.png", "--point", "3,3", "--out", f"{photo / 'seg'}/")
    one_line_error(r, "never overwrites an input")
    r = cli("train", "text", "--data", photo / "seg" / "overlay.png", "--model", "ngram", "--out", photo / "seg")
    one_line_error(r)
    assert snapshot(photo) == before


@pytest.mark.parametrize(
    "args",
    [
        ["generate", "text", "--max-tokens", "2", "--prompt", "~nobody said", "--out", "{d}/x.txt"],
        ["generate", "text", "--max-tokens", "2", "--out", "~nosuchuser-genlab/x.txt"],
        ["segment", "~nosuchuser-genlab/a.png", "--point", "1,1", "--json"],
    ],
)
def test_a_tilde_that_names_no_user_is_just_a_path(cli, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    r = cli(*[a.format(d=tmp_path) for a in args])
    assert r.code in (0, 2) and "Traceback" not in r.err, r


def test_force_that_fails_before_its_first_checkpoint_keeps_the_old_run(cli, tmp_path, corpus_file):
    tiny = ["--set", "n_layer=1", "--set", "n_embd=16", "--set", "n_head=2", "--set", "block_size=16", "--quiet"]
    out = tmp_path / "run"
    assert cli("train", "text", "--data", corpus_file, "--out", out, "--steps", "2", *tiny).code == 0
    before = snapshot(out)
    nan = ["--set", "lr=1e30", "--set", "warmup=0", "--set", "grad_clip=0", "--steps", "5"]
    r = cli("train", "text", "--data", corpus_file, "--out", out, "--force", *nan, *tiny)
    one_line_error(r, "loss became", "no checkpoint saved")
    assert snapshot(out) == before  # the replaced run is back, file for file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt", "run"]  # nothing left aside


def test_resume_completes_a_save_a_crash_interrupted(cli, tmp_path, corpus_file):
    """Killed between the two renames of a save: the folder is missing and its next version waits beside it."""
    tiny = ["--set", "n_layer=1", "--set", "n_embd=16", "--set", "n_head=2", "--set", "block_size=16", "--quiet"]
    out = tmp_path / "run"
    assert cli("train", "text", "--data", corpus_file, "--out", out, "--steps", "2", *tiny).code == 0
    out.rename(tmp_path / ".run.saving")
    r = cli("train", "text", "--out", out, "--resume", "--steps", "3", "--quiet")
    assert r.code == 0, r
    assert json.loads((out / "manifest.json").read_text())["step"] == 3
