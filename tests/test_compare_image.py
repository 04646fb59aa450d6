"""``genlab compare image``: the budget and family parsing, the bad inputs the issue names (one clear line, exit 2,
nothing written), and a whole comparison of two families over two seeds with its report and ``--from``."""

from __future__ import annotations

import json

import pytest

from genlab.errors import GenlabError
from genlab.eval.image_comparison import Budget, parse_budget
from genlab.train.compare_image import check_families, comparable_families

from .test_cli import one_line_error


@pytest.mark.parametrize(
    ("text", "budget"),
    [("2000", Budget(steps=2000)), ("3 steps", Budget(steps=3)), ("90s", Budget(seconds=90.0)),
     ("10m", Budget(seconds=600.0)), ("1.5h", Budget(seconds=5400.0)), ("0.5m", Budget(seconds=30.0)),
     ("preset", Budget())],
)  # fmt: skip
def test_a_budget_is_steps_wall_clock_time_or_the_presets(text, budget):
    assert parse_budget(text) == budget
    expected = {"time_budget": budget.seconds, "steps": 10**9} if budget.seconds else {"steps": budget.steps}
    assert budget.overrides() == (expected if budget != Budget() else {})  # preset: each family's own steps


@pytest.mark.parametrize("text", ["0", "0s", "0.0m", "soon", "-5", "10 minutes", "1.5", "", "nan"])
def test_a_budget_of_zero_or_unparseable_is_refused(text):
    with pytest.raises(GenlabError, match="--budget"):
        parse_budget(text)


def test_families_are_the_image_families_that_learn_from_images_alone():
    assert set(comparable_families()) == {"diffusion", "pixelcnn", "vae", "gan"}
    assert check_families(" vae, gan ") == ["vae", "gan"]
    for bad, needle in (("vae,flow", "unknown family 'flow'"), ("text2image", "unknown family"), (",", "no family"),
                        ("gan,gan", "named twice")):  # fmt: skip
        with pytest.raises(GenlabError, match=needle):
            check_families(bad)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--families", "vae,flow"], "unknown family 'flow'"),
        (["--budget", "0"], "more than 0"),
        (["--budget", "a while"], "--budget"),
        (["--seeds", "0"], "--seeds"),
        (["--samples", "0"], "--samples"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(cli, tmp_path, args, needle):
    out = tmp_path / "report"
    one_line_error(cli("compare", "image", "--data", "digits", "--out", str(out), *args), needle)
    assert not out.exists()


def test_from_a_checkpoint_that_is_not_an_image_model_is_refused(cli, tmp_path):
    from genlab.assets import default_model

    out = tmp_path / "report"
    r = cli("compare", "image", "--data", "digits", "--from", str(default_model("text")), "--out", str(out))
    one_line_error(r, "image")
    assert not out.exists()


def test_models_of_different_sizes_are_refused(cli, tmp_path):
    from genlab.assets import default_model

    out = tmp_path / "report"
    r = cli("compare", "image", "--data", "digits", "--from", str(default_model("image")), "--families", "gan",
            "--budget", "3", "--out", str(out))  # fmt: skip
    one_line_error(r, "different sizes (8, 16)")
    assert not out.exists()


def test_a_report_folder_that_holds_files_is_refused(cli, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    one_line_error(cli("compare", "image", "--data", "digits", "--out", str(tmp_path)), "holds files")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_two_families_two_seeds_a_floor_and_a_report(cli, tmp_path):
    out = tmp_path / "report"
    r = cli("compare", "image", "--data", "digits", "--families", "gan,pixelcnn", "--budget", "3", "--seeds", "2",
            "--samples", "40", "--features", "classifier", "--out", str(out), "--quiet", "--json")  # fmt: skip
    assert r.code == 0, r
    result = json.loads(r.out)
    assert set(result["files"]) >= {"report.md", "report.html", "results.json"}
    rows = result["rows"]
    assert [(row["name"], row["seed"]) for row in rows] == [
        ("real data", None), ("gan", 0), ("gan", 1), ("pixelcnn", 0), ("pixelcnn", 1)
    ]  # fmt: skip
    for row in rows[1:]:
        assert row["figures"]["steps"] == 3 and (out / "runs" / f"{row['name']}-seed{row['seed']}").is_dir()
        assert row["figures"]["fid_classifier"] > rows[0]["figures"]["fid_classifier"]  # 3 steps: far from real
    assert rows[0]["figures"]["class_kl_to_uniform"] < 0.5  # real digits, read at the classifier's size: all classes
    assert rows[1]["figures"]["network_evals_per_sample"] == 1 and rows[3]["figures"]["network_evals_per_sample"] == 64
    summary = result["summary"]
    assert summary["pixelcnn"]["likelihood"] == "exact" and summary["gan"]["likelihood"] == "none"
    assert summary["gan"]["runs"] == 2 and summary["gan"]["fid_classifier"]["sd"] > 0  # two seeds differ
    assert "bits_per_dim" in summary["pixelcnn"] and "bits_per_dim" not in summary["gan"]
    table = (out / "report.md").read_text()
    assert "| real data |" in table and "| gan | 2 | none |" in table and "| pixelcnn | 2 | exact |" in table
    assert {p.name for p in (out / "grids").iterdir()} == {"real_data.png", "gan.png", "pixelcnn.png"}
    assert "<script" not in (out / "report.html").read_text()

    again = tmp_path / "again"
    r = cli("compare", "image", "--data", "digits", "--from", str(out / "runs" / "gan-seed0"), "--samples", "40",
            "--features", "classifier", "--out", str(again), "--quiet", "--json")  # fmt: skip
    assert r.code == 0, r
    rows_again = json.loads(r.out)["rows"]
    assert [row["name"] for row in rows_again] == ["real data", "gan-seed0"] and not (again / "runs").exists()
    assert rows_again[1]["figures"]["fid_classifier"] == pytest.approx(rows[1]["figures"]["fid_classifier"])


def test_help_teaches_the_budget_the_floor_and_from(cli):
    r = cli("compare", "image", "--help")
    assert r.code == 0
    for needle in ("--budget", "90s, 10m, 1h", "--seeds", "--from", "floor row", "quality_speed.png", "examples:"):
        assert needle in r.out, needle
    assert "image families" in cli("compare", "--help").out
