"""The lip-sync evaluation's tables (markdown) and its plot of predicted vs real opening over time (PNG).

Kept apart from inference/lipsync.py, which measures: this file only lays out what was measured.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geneface.data.contract import FPS
from geneface.inference.lipsync import LAG_OK, ROWS

# (key, title, format) of the summary tables; "–" where a score is undefined or does not apply
SUMMARY_COLUMNS = (("aperture_r", "aperture r (lag 0)", ".3f"), ("median_aperture_r", "median r", ".3f"),
                   ("best_r", "r at best lag", ".3f"), ("lag_ok", f"best lag within ±{LAG_OK}", ".0%"),
                   ("width_r", "width r", ".3f"), ("mouth_lmd", "mouth LMD (% eye span)", ".2f"),
                   ("amplitude", "amplitude", ".2f"), ("sync", "sync", ".3f"), ("clips", "clips", "d"))
CLIP_ROWS = ("model", "vae", "loudness", "shuffled")     # the per-clip and per-group tables' r columns
PLOT_ROWS = (("real", "k", 1.6), ("model", "C0", 1.2), ("vae", "C2", 0.9), ("loudness", "C1", 0.9),
             ("shuffled", "C7", 0.8))


def _cell(value, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def _row_title(name: str, result: dict) -> str:
    return f"model ({result['model_stage']})" if name == "model" else name


def summary_table(summary: dict[str, dict], result: dict) -> str:
    """{row: summarise(...)} → markdown, one line per row (real, model, baselines)."""
    lines = ["| | " + " | ".join(t for _, t, _ in SUMMARY_COLUMNS) + " |", "|---" * (len(SUMMARY_COLUMNS) + 1) + "|"]
    for name in (r for r in ROWS if r in summary):
        cells = [_cell(summary[name].get(k), f) for k, _, f in SUMMARY_COLUMNS]
        lines.append(f"| {_row_title(name, result)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def group_table(result: dict) -> str:
    """One line per speaker group: its clips' mean aperture r per row, the model's lag and LMD, sync."""
    rows = [r for r in CLIP_ROWS if r in result["mean"]]
    head = (["group", "clips"] + [f"r {_row_title(r, result)}" for r in rows]
            + ["model lag within ±1", "model LMD", "sync real", "sync model", "sync shuffled"])
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for group, summary in result["groups"].items():
        cells = [group, str(summary["model"]["clips"])] + [_cell(summary[r]["aperture_r"], ".3f") for r in rows]
        cells += [_cell(summary["model"]["lag_ok"], ".0%"), _cell(summary["model"]["mouth_lmd"], ".2f")]
        cells += [_cell(summary[r]["sync"], ".3f") for r in ("real", "model", "shuffled")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def clip_table(result: dict) -> str:
    """One line per clip: r and best lag per row, the model's LMD, sync of real / model / shuffled."""
    rows = [r for r in CLIP_ROWS if r in result["mean"]]
    head = (["clip", "frames"] + [f"r {_row_title(r, result)} (lag)" for r in rows]
            + ["model LMD", "sync real", "sync model", "sync shuffled"])
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for clip in result["clips"]:
        values = clip["rows"]
        cells = [clip["item_id"], str(clip["frames"])]
        cells += [f"{_cell(values[r]['aperture_r'], '.3f')} ({_cell(values[r]['best_lag'], '+d')})" for r in rows]
        cells += [_cell(values["model"]["mouth_lmd"], ".2f")]
        cells += [_cell(values[r]["sync"], ".3f") for r in ("real", "model", "shuffled")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(result: dict) -> str:
    """The whole report: what was scored, the mean table, per group, per clip, notes."""
    s = result["settings"]
    fit = result["loudness_fit"]
    parts = [
        f"# Lip sync: {result['dataset']} ({result['kind']}, split {result['split']}, {len(result['clips'])} clips)",
        "",
        f"model: {result['model_stage']} `{result['model_ckpt']}`; SyncNet: `{result['syncnet_ckpt']}`; "
        f"temperature {s['temperature']}, seed {s['seed']}, post-processed as infer: {s['postprocess']}; "
        f"best lag searched within ±{s['max_lag']} frames (> 0: the prediction is late). Loudness: opening = "
        f"{fit['opening']['slope']:.3g}·energy + {fit['opening']['intercept']:.3g}, fit on {fit['clips']} "
        f"{fit['split']} clip(s). Wall time {result['wall_s']:.1f} s.",
        "", "## Mean over clips", "", summary_table(result["mean"], result),
        "", "## Per speaker group (mean over its clips)", "", group_table(result),
        "", "## Per clip: aperture r at lag 0 (best lag)", "", clip_table(result),
    ]
    if result["notes"]:
        parts += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(parts) + "\n"


def plot_openings(path: str | Path, series: dict[str, dict[str, np.ndarray]], result: dict,
                  max_clips: int = 4, max_seconds: float | None = 12.0) -> Path:
    """Predicted vs real inner-lip opening over time for up to `max_clips` clips (evenly spread), one
    panel each, their first `max_seconds` (a minute of 25 fps is too dense to read); each series
    standardised (z-score over the whole clip), since r is what is judged and the model's amplitude has
    its own column. The panel titles give each row's r at lag 0 (over the whole clip)."""
    from matplotlib.figure import Figure   # no pyplot: renders with Agg, leaves the global backend alone

    ids = list(series)
    picked = [ids[k] for k in sorted(set(np.linspace(0, len(ids) - 1, min(max_clips, len(ids))).round().astype(int)))]
    rows = {c["item_id"]: c["rows"] for c in result["clips"]}
    fig = Figure(figsize=(11, 2.4 * len(picked)))
    axes = np.atleast_1d(fig.subplots(len(picked), 1))
    for ax, item_id in zip(axes, picked):
        scored = []
        for name, colour, width in PLOT_ROWS:
            if name not in series[item_id]:
                continue
            values = np.asarray(series[item_id][name], np.float64)
            z = (values - values.mean()) / (values.std() if values.std() > 1e-12 else 1.0)
            shown = len(z) if max_seconds is None else min(len(z), int(max_seconds * FPS))
            ax.plot(np.arange(shown) / FPS, z[:shown], color=colour, lw=width, label=_row_title(name, result))
            if name != "real":
                scored.append(f"{name} {_cell(rows[item_id][name]['aperture_r'], '.2f')}")
        ax.set_title(f"{item_id}: r at lag 0 — " + ", ".join(scored), fontsize=9)
        ax.set_ylabel("opening (z)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=7, ncol=5)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(f"inner-lip opening (62↔66), predicted vs real: {Path(result['dataset']).name}, "
                 f"{result['split']} split", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
