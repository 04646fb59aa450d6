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
    accuracy = {"shapes_held_out": {"miou_1click_oracle": 0.91, "miou_box_single": 0.5}}
    # --no-timing: no "cpu" figures, so the speed targets are not measured; sets not evaluated are not either
    got = segment.targets(accuracy)
    assert got["shapes_1click_oracle_ge_0.9055"] is True and got["shapes_box_single_ge_0.9619"] is False
    assert got["decoder_1_thread_le_10ms"] is None and got["encoder_256_le_100ms"] is None
    assert got["heldout_kinds_1click_chosen_ge_0.80"] is None
    timed = accuracy | {"cpu": {"decoder_ms_per_prompt_1_thread": 12.5, "set_image_ms_256x256": 40.0}}
    assert segment.targets(timed)["decoder_1_thread_le_10ms"] is False
    assert segment.targets(timed)["encoder_256_le_100ms"] is True
    kinds = {"miou_1click": 0.6, "miou_1click_oracle": 0.62, "miou_box": 0.95, "click_inside": 1.0,
             "miou_1click_any": 0.6, "miou_1click_any_oracle": 0.7}  # fmt: skip
    base = {"scenes_heldout_kinds": {"flood_fill": {"miou_1click": 0.7}, "grabcut": {"miou_box": 0.9}}}
    got = segment.targets({"scenes_heldout_kinds": kinds, "baselines": base})
    assert got["heldout_kinds_1click_ge_best_classic"] is False and got["heldout_kinds_box_ge_grabcut"] is True
    assert got["chosen_within_0.05_of_oracle_everywhere"] is True and got["click_inside_ge_0.99_everywhere"] is True
    assert got["chosen_within_0.05_of_oracle_any_reading_everywhere"] is False
    assert set(segment.targets({}).values()) == {None}


def test_chat_targets_compare_each_figure_with_its_own_and_null_what_was_not_measured():
    chat = _load("chat")
    assert {v["met"] for v in chat.targets({}).values()} == {None}
    methods = {
        "sft (reference)": {"kind": "reference", "score": 0.1, "kl": 0.0},
        "best-of-16": {"kind": "best-of", "score": 0.35, "kl": 1.8},
        "ppo-step288": {"kind": "run", "score": 0.45, "kl": 9.0, "win_rate": 0.72, "win_low": 0.6, "win_high": 0.8},
        "dpo-beta0.1": {"kind": "run", "score": 0.5, "kl": 12.0, "win_rate": 0.69, "win_low": 0.6, "win_high": 0.8},
    }
    result = {
        "sft": {"sft": {"end_rate": 0.96, "held_out_loss": 2.0}, "base": {"end_rate": 0.0, "held_out_loss": 3.0}},
        "rm": {"rm": {"val_accuracy": 0.6, "judge_agreement_held_out": 0.7}},
        "compare": {"methods": methods},
        "timing_s": {"total": 3000.0},
    }
    met = {k: v["met"] for k, v in chat.targets(result).items()}
    assert met["sft_end_rate_ge_0.95_above_base"] and met["sft_loss_below_base"]
    short = result | {"sft": result["sft"] | {"sft": {"end_rate": 0.9, "held_out_loss": 2.0}}}
    assert chat.targets(short)["sft_end_rate_ge_0.95_above_base"]["met"] is False  # above the base, below 95%
    assert met["rm_accuracy_ge_0.85x_agreement"] is True  # 0.6 ≥ 0.85 × 0.7 = 0.595
    assert met["rm2_accuracy_ge_0.85x_agreement"] is None  # rm2 not trained
    assert met["ppo-step288_score_ge_sft_plus_0.3_at_kl_le_10"] is True  # 0.45 ≥ 0.1 + 0.3 at KL 9
    assert met["dpo-beta0.1_score_ge_sft_plus_0.3_at_kl_le_10"] is False  # KL 12 > 10
    assert met["ppo-step288_score_ge_best_of_16"] is True
    assert met["dpo-beta0.1_score_ge_best_of_16"] is False  # KL 12 again
    assert met["ppo-step288_win_rate_ge_0.70"] is True and met["dpo-beta0.1_win_rate_ge_0.70"] is False
    assert met["dpo-beta0.3_win_rate_ge_0.70"] is None  # that run is not in this comparison
    assert met["ppo-step336_win_rate_ge_0.70"] is None  # nor that checkpoint
    assert met["dpo-round2-step144_score_ge_sft_plus_0.3_at_kl_le_10"] is None  # nor DPO's second round
    assert met["rm-round2_accuracy_ge_0.85x_agreement"] is None  # PPO's second round not run
    assert met["ppo-round2-step48_score_ge_sft_plus_0.3_at_kl_le_10"] is None
    assert chat.rlhf_runs(chat.FULL)[-9:] == (
        "dpo-round2-step72",
        "dpo-round2-step144",
        "dpo-round2-step216",
        *(f"ppo-round2-step{n}" for n in (8, 16, 24, 32, 48, 64)),
    )
    quick = {k: v["met"] for k, v in chat.targets(result | {"settings": chat.QUICK}).items()}
    assert "ppo-step16_win_rate_ge_0.70" in quick and "ppo-step288_win_rate_ge_0.70" not in quick
    assert met["wall_lt_60_min"] is None  # not the whole pipeline in this run: its time is no measure of the target
    assert chat.targets(result | {"whole_pipeline": True})["wall_lt_60_min"]["met"] is True


def test_chat_halves_of_the_training_prompts_are_disjoint_and_stable():
    chat = _load("chat")
    prompts = [f"prompt {i}" for i in range(400)]
    a, b = chat.split_prompts(prompts)
    assert not set(a) & set(b) and sorted(a + b) == sorted(prompts)
    assert 150 < len(a) < 250 and chat.split_prompts(prompts) == (a, b)


def test_compare_image_targets_read_the_report_and_say_where_the_data_disagrees():
    compare = _load("compare_image")

    def fig(**kw):  # noqa: ANN003, ANN202
        return {k: {"mean": v, "sd": 0.0} for k, v in kw.items()}

    summary = {
        "real data": fig(fid_classifier=0.05, recall_classifier=0.9),
        "gan": fig(fid_classifier=0.6, seconds_per_sample=1e-4, recall_classifier=0.8, coverage_classifier=0.9),
        "diffusion": fig(fid_classifier=0.4, seconds_per_sample=0.1, bits_per_dim=1.9, recall_classifier=0.85),
        "pixelcnn": fig(fid_classifier=0.5, seconds_per_sample=0.01, bits_per_dim=1.7, recall_classifier=0.88),
    }
    rows = [{"name": "gan", "figures": {"min_class_share": s}} for s in (0.08, 0.09)]
    t = compare.targets({"summary": summary, "rows": rows}, seconds=30 * 60)
    assert t["whole_command_under_45_min"] and t["gan_every_class_ge_5pct_every_seed"]
    assert t["gan_fid_within_2x_diffusion"]
    assert t["trilemma"]["gan_fastest"] and t["trilemma"]["diffusion_best_fid"]
    assert (
        t["trilemma"]["best_bits_per_dim"] == "pixelcnn"
        and t["trilemma"]["vae_or_pixelcnn_best_likelihood_or_coverage"]
    )
    summary["diffusion"]["fid_classifier"]["mean"] = 0.25
    rows[1]["figures"]["min_class_share"] = 0.01  # one seed collapsed
    t = compare.targets({"summary": summary, "rows": rows}, seconds=50 * 60)
    assert not t["whole_command_under_45_min"] and not t["gan_every_class_ge_5pct_every_seed"]
    assert not t["gan_fid_within_2x_diffusion"]
