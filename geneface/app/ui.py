"""The Gradio page: **Speak** (a trained speaker says your audio) and **Speakers** (what is trained,
reports, and the pipeline for a new video). Renders run one at a time, in a queue whose position Gradio
shows; a pipeline run has a queue of its own, so a long training does not hold up renders.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from geneface.app.actions import BACKGROUNDS, UserError, corpora, speak, speaker_overview, start_pipeline
from geneface.pipeline.steps import TRAINED_STAGES

SPEAKER_HEADERS = ["speaker", "processed", *TRAINED_STAGES, "evaluation", "report"]   # speaker_overview's cells


def _devices() -> list[str]:
    import torch

    return ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]


def build_app(output_dir: Path, data_dir: Path) -> gr.Blocks:
    output_dir, data_dir = Path(output_dir), Path(data_dir)

    def on_speak(speaker, audio, renderer, background, seconds, device, progress=gr.Progress(track_tqdm=True)):
        progress(0, desc="loading the models")
        try:
            return str(speak(output_dir, speaker, audio, renderer, background, seconds or None, device))
        except UserError as err:
            raise gr.Error(str(err), print_exception=False) from None

    def report_links(rows: list[list[str]]) -> str:
        """Links to each report.html, served from output_dir (launch's allowed_paths), so its relative
        video links resolve too."""
        links = [f"[{row[0]}](/gradio_api/file={row[-1]})" for row in rows if row[-1] != "–"]
        return "Reports: " + (" · ".join(links) if links else "none yet")

    def on_refresh():
        names, rows = speaker_overview(output_dir, data_dir)
        return gr.Dropdown(choices=names, value=names[0] if names else None), rows, report_links(rows)

    def on_pipeline(name, video, preset, corpus):
        try:
            yield from start_pipeline(output_dir, name, video, preset, corpus)
        except UserError as err:
            raise gr.Error(str(err), print_exception=False) from None

    speakers, rows = speaker_overview(output_dir, data_dir)
    with gr.Blocks(title="geneface") as app:
        gr.Markdown("# geneface\nAudio-driven talking heads of the speakers trained here "
                    f"(`{output_dir}`).")
        with gr.Tab("Speak"):
            with gr.Row():
                with gr.Column():
                    speaker = gr.Dropdown(speakers, value=speakers[0] if speakers else None, label="speaker",
                                          info="trained speakers (a selected postnet and a renderer)")
                    audio = gr.Audio(sources=["upload", "microphone"], type="filepath",
                                     label="audio (any format ffmpeg reads)")
                    with gr.Accordion("options", open=False):
                        renderer = gr.Dropdown(["radnerf", "radnerf_torso"], value="radnerf", label="renderer",
                                               info="radnerf: the head, in your own frames; radnerf_torso: "
                                                    "head and torso over a backdrop")
                        background = gr.Dropdown(list(BACKGROUNDS), value="auto", label="background",
                                                 allow_custom_value=True,
                                                 info="auto (video for the head, plate under a torso), video, "
                                                      "plate, a colour, '#rrggbb'")
                        seconds = gr.Number(value=None, label="preview seconds (empty: all of it)", minimum=0)
                        device = gr.Dropdown(_devices(), value=_devices()[0], label="device")
                    go = gr.Button("Render", variant="primary")
                with gr.Column():
                    video = gr.Video(label="result", autoplay=False)
            go.click(on_speak, [speaker, audio, renderer, background, seconds, device], video,
                     api_name="speak", concurrency_id="render", concurrency_limit=1)
        with gr.Tab("Speakers"):
            table = gr.Dataframe(rows, headers=SPEAKER_HEADERS, interactive=False,
                                 label="what is trained (outputs/<speaker>/report.html has the details)")
            reports = gr.Markdown(report_links(rows))
            refresh = gr.Button("Refresh")
            gr.Markdown("### A new speaker from a video\nRuns `python -m geneface.pipeline` (process → audio2motion → "
                        "postnet → radnerf → evaluate → a sample in your own video's frames); about an hour on a CPU.")
            with gr.Row():
                name = gr.Textbox(label="name", placeholder="obama")
                upload = gr.File(label="video", file_types=["video"], type="filepath")
                preset = gr.Dropdown(["auto", "cpu", "gpu", "full"], value="auto", label="preset")
                corpus = gr.Dropdown(["auto", *corpora(output_dir)], value="auto", label="corpus")
            start = gr.Button("Start the pipeline")
            log = gr.Textbox(label="progress", lines=12, max_lines=40, autoscroll=True)
            start.click(on_pipeline, [name, upload, preset, corpus], log, api_name="pipeline",
                        concurrency_id="pipeline", concurrency_limit=1)
            refresh.click(on_refresh, None, [speaker, table, reports], api_name="refresh")
    app.queue(default_concurrency_limit=1)
    return app
