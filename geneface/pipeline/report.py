"""outputs/<speaker>/report.html: one page that says whether a speaker came out well, readable offline
in any browser. Images are embedded (the page survives being copied or mailed); the sample video is
linked beside it (too large to embed).
"""

from __future__ import annotations

import base64
import html
import json
import os
import time
from pathlib import Path

from geneface.data import contract
from geneface.pipeline.status import SpeakerStatus
from geneface.utils.io import save_text

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;display:block;overflow-x:auto}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #ddd;margin:.25em 0}code{background:#f5f5f5;padding:0 .2em}
.missing{color:#a00}.small{color:#666;font-size:.9em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}"""
MAX_VAL_RENDERS = 2          # per renderer stage: its last validation's first images


def _image(path: Path, alt: str, width: int | None = None) -> str:
    mime = "image/png" if path.suffix.lower() == ".png" else "image/jpeg"
    data = base64.b64encode(path.read_bytes()).decode()
    size = f' width="{width}"' if width else ""
    return f'<img alt="{html.escape(alt)}" src="data:{mime};base64,{data}"{size}>'


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def markdown_table(markdown: str) -> str:
    """geneface.evaluate's markdown table → HTML (its cells are plain text)."""
    lines = [line.strip().strip("|").split("|") for line in markdown.strip().splitlines()]
    lines = [[c.strip() for c in line] for line in lines if not set("".join(line)) <= set("-: ")]
    return _table(lines[0], [[html.escape(c) for c in row] for row in lines[1:]]) if lines else ""


def latest_val_renders(stage_dir: Path, limit: int = MAX_VAL_RENDERS) -> list[Path]:
    """The last validation's render|truth PNGs of a renderer stage (runs/*/val_renders/stepNNN_*.png)."""
    renders = sorted(stage_dir.glob("runs/*/val_renders/step*.png"), key=lambda p: (p.name.split("_")[0], p.name))
    if not renders:
        return []
    last_step = renders[-1].name.split("_")[0]
    return [p for p in renders if p.name.startswith(last_step)][:limit]


def _processing(status: SpeakerStatus) -> str:
    if status.dataset is None:
        return '<p class="missing">not processed yet</p>'
    parts = []
    meta = json.loads((status.dataset / contract.META_FILE).read_text())
    stats_file = status.dataset / "report" / "stats.json"
    stats = json.loads(stats_file.read_text()) if stats_file.is_file() else {}
    rows = [["source video", html.escape(str(meta.get("source_video", "–")))],
            ["frames (train / val)", f"{meta.get('num_frames')} ({meta.get('num_train')} / "
                                     f"{meta.get('num_frames', 0) - meta.get('num_train', 0)})"],
            ["size", f"{meta.get('width')}×{meta.get('height')} at {meta.get('fps')} fps"]]
    for key, label in (("face_detection_rate", "face found in"), ("landmark_jitter_px", "landmark jitter px"),
                       ("reprojection_error_px_median", "pose reprojection px, median"),
                       ("reprojection_error_px_p95", "pose reprojection px, p95")):
        if stats.get(key) is not None:
            value = stats[key]
            rows.append([label, f"{value:.1%}" if key == "face_detection_rate" else f"{value:.2f}"])
    parts.append(_table(["", ""], rows))
    for name, alt in (("contact_sheet.png", "contact sheet: frames with landmarks and labels"),
                      ("pose.png", "head pose over time")):
        if (status.dataset / "report" / name).is_file():
            parts.append(f"<p>{_image(status.dataset / 'report' / name, alt)}</p>")
    return "".join(parts)


def _stages(status: SpeakerStatus, state: dict) -> str:
    rows = []
    for stage, info in status.stages.items():
        wall = state.get(stage, {}).get("wall_s")
        took = f"{wall / 60:.1f} min" if wall else "–"
        if info is None:
            rows.append([stage, '<span class="missing">not trained</span>', "–", "–", took])
        else:
            metrics = ", ".join(f"{html.escape(k)} {v:.4g}" for k, v in info.metrics.items()) or "–"
            rows.append([stage, f"<code>{html.escape(str(info.checkpoint))}</code>", str(info.step), metrics, took])
    return _table(["stage", "checkpoint in use", "step", "key metrics", "training time"], rows)


def _evaluation(status: SpeakerStatus) -> str:
    result = status.evaluation
    if not result:
        return '<p class="missing">not evaluated yet</p>'
    first, end = result["val_frames"]
    parts = [f"<p>{html.escape(result.get('renderer_stage', ''))} on val frames {first}–{end - 1} "
             "(docs/evaluation.md says what each column means)</p>",
             markdown_table(result["table"])]
    parts += [f'<p class="small">note: {html.escape(n)}</p>' for n in result.get("notes", [])]
    if result.get("strip") and Path(result["strip"]).is_file():
        parts.append("<p>Mouths of val frames, rows: truth, reconstruction, frozen condition, audio-driven</p>"
                     f"<p>{_image(Path(result['strip']), 'mouth strip')}</p>")
    return "".join(parts)


def _renders(output_dir: Path, name: str) -> str:
    parts = []
    for stage in ("radnerf", "radnerf_torso"):
        renders = latest_val_renders(output_dir / name / stage)
        if renders:
            parts.append(f"<h3>{stage} (render | truth), {html.escape(renders[0].name.split('_')[0])}</h3>")
            parts += [f"<p>{_image(p, f'{stage} val render {p.name}')}</p>" for p in renders]
    return "".join(parts) or '<p class="missing">no val renders yet</p>'


def _videos(status: SpeakerStatus, report: Path) -> str:
    if not status.videos:
        return '<p class="missing">no sample video yet</p>'
    parts = []
    for video in reversed(status.videos[-3:]):
        link = html.escape(os.path.relpath(video, report.parent))
        parts.append(f'<p><video controls width="512" src="{link}"></video><br><a href="{link}">{link}</a></p>')
    return "".join(parts)


def _steps(state: dict) -> str:
    if not state:
        return ""
    rows = [[html.escape(step), "done" if rec.get("done") else "not finished",
             f"{rec['wall_s'] / 60:.1f} min" if rec.get("wall_s") else "–",
             f"<code>python {html.escape(' '.join(rec.get('argv', [])))}</code>"] for step, rec in state.items()]
    return "<h2>Pipeline</h2>" + _table(["step", "status", "wall time", "command"], rows)


def write_report(status: SpeakerStatus, output_dir: Path, state: dict | None = None) -> Path:
    """Write outputs/<speaker>/report.html from what is on disk; returns its path."""
    out = Path(output_dir) / status.name / "report.html"
    state = state or {}
    page = [f"<!doctype html><html><head><meta charset='utf-8'><title>geneface: {html.escape(status.name)}</title>"
            f"<style>{STYLE}</style></head><body>",
            f"<h1>{html.escape(status.name)}</h1><p class='small'>written {time.strftime('%Y-%m-%d %H:%M')} by "
            "<code>python -m geneface.pipeline</code></p>",
            "<h2>Sample video</h2>", _videos(status, out),
            "<h2>Evaluation</h2>", _evaluation(status),
            "<h2>Val renders beside the truth</h2>", _renders(Path(output_dir), status.name),
            "<h2>Stages</h2>", _stages(status, state),
            "<h2>Processing</h2>", _processing(status),
            _steps(state), "</body></html>"]
    save_text(out, "\n".join(page))
    return out
