"""The report of a chat comparison (:mod:`genlab.eval.compare_chat`): ``frontier.png`` (the judge's score against
the KL from the reference, every method), ``report.html`` (the figures, and the answers to the first prompts side
by side) and ``results.json``, written together into a new or empty folder."""

from __future__ import annotations

import html
import json
import math
import shutil
import warnings
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError, GenlabWarning
from genlab.eval.compare_chat import EXAMPLES, Comparison, Method
from genlab.io import SAVING, fsync_tree, jsonable, sibling, swap_in

FILES = ("frontier.png", "report.html", "results.json")


def check_report_folder(out: Path) -> None:
    """GenlabError unless ``out`` can become the report: a folder that does not exist yet, or an empty one."""
    if out.exists() and not out.is_dir():
        raise GenlabError(f"--out {out}: is a file; name a new or empty folder for the report")
    if out.is_dir() and any(out.iterdir()):
        raise GenlabError(f"--out {out}: holds files; name a new or empty folder for the report")


def write_report(out: str | Path, comparison: Comparison) -> list[str]:
    """Write :data:`FILES` into ``out`` (new or empty) whole: into a hidden sibling, swapped in at the end, so a
    failure leaves nothing behind. Without matplotlib the figure is left out, with a warning. The files written."""
    out = Path(out)
    check_report_folder(out)
    tmp = sibling(out, SAVING)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        plotted = plot_frontier(comparison, tmp / "frontier.png")
        (tmp / "report.html").write_text(report_html(comparison, plotted), encoding="utf-8")
        text = json.dumps(jsonable(comparison.to_json()), indent=2, ensure_ascii=False, allow_nan=False)
        (tmp / "results.json").write_text(text + "\n", encoding="utf-8")
        fsync_tree(tmp)
        swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [name for name in FILES if (out / name).is_file()]


def plot_frontier(comparison: Comparison, path: Path) -> bool:
    """The judge's mean score against the KL from the reference (± standard errors): best-of-n a connected line,
    the reference and each run a labelled point, runs of one family and method connected in order of KL. False
    (and a warning) where matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warnings.warn(
            "matplotlib is not installed: frontier.png left out (report.html and results.json are written); "
            "pip install matplotlib for the plot",
            GenlabWarning,
            stacklevel=2,
        )
        return False
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    groups: dict[str, list[Method]] = {}
    for m in comparison.methods:
        groups.setdefault(m.group, []).append(m)
    for group, members in groups.items():
        members = sorted(members, key=lambda m: _num(m.figures["kl"]))
        xs = [_num(m.figures["kl"]) for m in members]
        ys = [_num(m.figures["score"]) for m in members]
        err = [_num(m.figures["score_se"], 0.0) for m in members]
        xerr = [_num(m.figures["kl_se"], 0.0) if m.figures["kl_method"] == "estimate" else 0.0 for m in members]
        style = {"reference": dict(marker="*", ms=14, ls="none"), "best-of": dict(marker="o", ls="-")}
        label = {"best-of": "best-of-n of the reference"}.get(group, group)
        ax.errorbar(xs, ys, yerr=err, xerr=xerr, capsize=3, label=label, **style.get(group, dict(marker="s", ls="-")))
        for m, x, y in zip(members, xs, ys, strict=True):
            ax.annotate(f"n={m.n}" if m.kind == "best-of" else m.name, (x, y), textcoords="offset points",
                        xytext=(5, 5), fontsize=8)  # fmt: skip
    ax.set_xlabel("KL(π ‖ π_ref), nats per answer")
    ax.set_ylabel(f"judge score ({comparison.settings.get('judge', 'judge')}), mean ± s.e.")
    ax.set_title(f"reward/KL frontier on {len(comparison.prompts)} held-out prompts")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _num(value: Any, default: float = float("nan")) -> float:
    return value if isinstance(value, (int, float)) and math.isfinite(value) else default


def _fmt(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) and math.isfinite(value) else "—"


COLUMNS = ("method", "kind", "score ± s.e.", "KL (nats)", "words", "tokens", "distinct-2", "end rate",
           "win rate [95% CI]", "W / T / L")  # fmt: skip

STYLE = """body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums}.answers td{max-width:20em;white-space:pre-wrap}"""


def _row(m: Method) -> list[tuple[str, bool]]:
    f = m.figures
    kl = _fmt(f["kl"]) + (" (exact)" if f["kl_method"] == "analytic" else "")
    kl += f" ± {_fmt(f['kl_se'])}" if f["kl_method"] == "estimate" else ""
    win = "—" if not f["wins"] + f["ties"] + f["losses"] else (
        f"{_fmt(f['win_rate'])} [{_fmt(f['win_low'])}, {_fmt(f['win_high'])}]")  # fmt: skip
    cells = [m.name, m.kind, f"{_fmt(f['score'])} ± {_fmt(f['score_se'])}", kl, _fmt(f["words"], 1),
             _fmt(f["tokens"], 1), _fmt(f["distinct_2"]), _fmt(f["end_rate"]), win,
             f"{f['wins']} / {f['ties']} / {f['losses']}" if win != "—" else "—"]  # fmt: skip
    return [(c, k >= 2) for k, c in enumerate(cells)]


def report_html(comparison: Comparison, plotted: bool = True) -> str:
    """The report page: settings, the figures' table, the frontier (if ``plotted``), and every method's answer to
    the first :data:`EXAMPLES` prompts side by side. Every text from a model or a user is HTML-escaped."""
    e = html.escape
    s = comparison.settings
    head = (
        f"<p>{len(comparison.prompts)} held-out prompts ({comparison.skipped} left out: too long), one answer each, "
        f"sampled at temperature 1, at most {e(str(s.get('max_tokens')))} tokens; seed {e(str(s.get('seed')))}. "
        f"Judge: <b>{e(str(s.get('judge')))}</b>. KL from the reference in nats per answer (best-of-n: "
        f"log n − (n−1)/n). Win rate over the reference's answer to the same prompt by the held-out reward model "
        f"{e(str(s.get('held_out_reward', '')))}; 95% Wilson interval; {e(str(s.get('ties', '')))}. Best-of-n picks "
        f"by {e(str(s.get('reward', 'the reward model')))}.</p>"
    )
    rows = "".join(
        "<tr>" + "".join(f"<td{' class=num' if num else ''}>{e(c)}</td>" for c, num in _row(m)) + "</tr>"
        for m in comparison.methods
    )
    table = "<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in COLUMNS) + f"</tr>{rows}</table>"
    names = "".join(f"<th>{e(m.name)}</th>" for m in comparison.methods)
    answers = "".join(
        f"<tr><td><b>{e(p)}</b></td>" + "".join(f"<td>{e(m.texts[i])}</td>" for m in comparison.methods) + "</tr>"
        for i, p in enumerate(comparison.prompts[:EXAMPLES])
    )
    figure = (
        '<img src="frontier.png" alt="judge score against KL">' if plotted else "<p>(no plot: matplotlib missing)</p>"
    )
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>chat comparison</title><style>{STYLE}</style>"
        f"</head><body><h1>Chat comparison: the reward/KL frontier</h1>{head}<h2>Figures</h2>{table}{figure}"
        f"<h2>Answers to the first {min(EXAMPLES, len(comparison.prompts))} prompts</h2>"
        f"<table class=answers><tr><th>prompt</th>{names}</tr>{answers}</table></body></html>\n"
    )
