"""The report of an image comparison (:mod:`genlab.train.compare_image`), written into its folder beside ``runs/``
and ``grids/``: ``report.md`` (the table: mean ± sd over seeds, the floor row first), ``report.html`` (the table, the
sample grids side by side and the plot), ``quality_speed.png`` (FID against seconds per sample, log-log) and
``results.json`` (every figure of every run). Each file is written atomically."""

from __future__ import annotations

import html
import json
import warnings
from pathlib import Path
from typing import Any

from genlab.errors import GenlabWarning
from genlab.eval.image_comparison import FIGURES, FLOOR, ImageComparison, slug
from genlab.io import jsonable, write_text

FILES = ("report.md", "report.html", "quality_speed.png", "results.json")


def _cell(entry: dict[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, dict):
        return "–"
    mean, sd = value["mean"], value["sd"]
    text = f"{mean:,.0f}" if abs(mean) >= 1000 else f"{mean:.3g}"
    return text + (f" ± {sd:.2g}" if entry["runs"] > 1 else "")


def table(comparison: ImageComparison) -> tuple[list[str], list[list[str]]]:
    """The summary as a header and rows of text: the floor first, then each family (or run) in order."""
    summary = comparison.summary()
    keys = [(k, title) for k, title, _ in FIGURES if any(k in e for e in summary.values())]
    header = ["model", "runs", "likelihood", *(title for _, title in keys)]
    rows = []
    for name, entry in summary.items():
        rows.append([name, str(entry["runs"]), entry["likelihood"], *(_cell(entry, k) for k, _ in keys)])
    return header, rows


def markdown(comparison: ImageComparison) -> str:
    header, rows = table(comparison)
    lines = [
        f"# genlab compare image: {comparison.data}",
        "",
        _settings_line(comparison),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
        f"`{FLOOR}`: training images scored against the held-out split as samples are — the best value each figure "
        "can reach with this many images. bits/dim: exact (PixelCNN), a bound (VAE: IWAE; diffusion: its "
        "variational bound), none (GAN); lower is "
        "better for FID, KID, bits/dim, near-copies and time; higher for precision, recall, density, coverage and "
        "the smallest class share.",
        "",
    ]
    return "\n".join(lines)


def _settings_line(comparison: ImageComparison) -> str:
    s = comparison.settings
    return ", ".join(f"{k} {v}" for k, v in s.items() if v is not None)


def plot_quality_speed(comparison: ImageComparison, path: Path) -> bool:
    """FID (classifier features, else Inception) against seconds per sample, each family's mean ± sd; the floor a
    dashed line. False (and a warning) without matplotlib or without the figures."""
    summary = comparison.summary()
    key = next((k for k in ("fid_classifier", "fid_inception") if any(k in e for e in summary.values())), None)
    points = {n: e for n, e in summary.items() if n != FLOOR and key in e and "seconds_per_sample" in e}
    if key is None or not points:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warnings.warn("matplotlib is not installed: the report has no plot", GenlabWarning, stacklevel=2)
        return False
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    for name, e in points.items():
        x, y = e["seconds_per_sample"], e[key]
        ax.errorbar(x["mean"], y["mean"], xerr=x["sd"], yerr=y["sd"], fmt="o", capsize=3, label=name)
        ax.annotate(name, (x["mean"], y["mean"]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    if key in summary.get(FLOOR, {}):
        ax.axhline(summary[FLOOR][key]["mean"], ls="--", c="grey", lw=1, label=f"{FLOOR} (floor)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("seconds per sample (log)")
    ax.set_ylabel(f"{key.replace('_', ' ')} (log; lower is better)")
    ax.set_title(f"quality against sampling speed: {comparison.data}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.saving.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return True


def report_html(comparison: ImageComparison, plotted: bool) -> str:
    header, rows = table(comparison)
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    grids = "".join(
        f'<figure><img src="grids/{esc(slug(name))}.png" alt="{esc(name)} samples"><figcaption>{esc(name)}'
        "</figcaption></figure>"
        for name in [FLOOR, *(n for n in comparison.names() if n != FLOOR)]
    )
    plot = '<p><img src="quality_speed.png" alt="FID against seconds per sample"></p>' if plotted else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>genlab compare image: {esc(comparison.data)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}td:first-child,th:first-child{{text-align:left}}
figure{{display:inline-block;margin:6px;text-align:center}}img{{image-rendering:pixelated}}</style></head>
<body><h1>genlab compare image: {esc(comparison.data)}</h1>
<p>{esc(_settings_line(comparison))}</p>
<table><tr>{head}</tr>{body}</table>
<p>{esc(markdown(comparison).split(chr(10))[-2])}</p>
<h2>Samples (seed 0; the first row: held-out images)</h2>{grids}
<h2>Quality against speed</h2>{plot}
</body></html>
"""


def write_image_report(out: Path, comparison: ImageComparison) -> list[str]:
    """Write :data:`FILES` into ``out`` (the plot only with matplotlib); the files written."""
    plotted = plot_quality_speed(comparison, out / "quality_speed.png")
    write_text(out / "report.md", markdown(comparison))
    write_text(out / "report.html", report_html(comparison, plotted))
    text = json.dumps(jsonable(comparison.to_json()), indent=2, ensure_ascii=False, allow_nan=False)
    write_text(out / "results.json", text + "\n")
    return [name for name in FILES if (out / name).is_file()]
