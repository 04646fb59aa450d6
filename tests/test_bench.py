"""The benchmark scripts' own logic (not their figures)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name: str):  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_segment_targets_not_measured_are_null_never_met():
    segment = _load("segment")
    accuracy = {"shapes_held_out": {"miou_1click_oracle": 0.9, "miou_box_single": 0.5}}
    # --no-timing: no "cpu" figures, so the decoder's speed target is not measured
    assert segment.targets(accuracy) == {
        "miou_1click_ge_0.85": True,
        "miou_box_ge_0.92": False,
        "decoder_le_10ms": None,
    }
    timed = accuracy | {"cpu": {"decoder_ms_per_prompt": 12.5}}
    assert segment.targets(timed)["decoder_le_10ms"] is False
    assert segment.targets(accuracy | {"cpu": {"decoder_ms_per_prompt": 3.0}})["decoder_le_10ms"] is True
    assert set(segment.targets({}).values()) == {None}
