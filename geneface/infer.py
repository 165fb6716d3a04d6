"""Inference entry point: `python -m geneface.infer speaker=<speaker> wav=<file>`.

Audio → landmarks with the speaker's selected postnet checkpoint (it carries its frozen VAE), the
reference's normalisation, per-region clamp and smoothing → the speaker's head renderer pasted back
into the speaker's own frames (background=auto → video; or head + torso over a backdrop along the
training video's smoothed camera path: renderer=radnerf_torso) → an mp4 with the audio. Also writes
`<wav>_lm3d.npy` (raw idexp [T, 68, 3]) and `<wav>_lm3d_normalized.npy`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from geneface.inference.landmarks import load_driving_audio, load_motion_model, speaker_landmarks
from geneface.inference.renderer import load_renderer
from geneface.inference.talking_head import VIDEO, render_video, renderer_stage, resolve_background
from geneface.media.audio import write_wav
from geneface.utils.checkpoints import upstream_checkpoint
from geneface.utils.cli import check_choices, errors_as_exit, require_speaker_kind
from geneface.utils.io import save_npy, temporary_dir_beside
from geneface.utils.threads import set_threads


def resolve_audio(wav: str, data_dir: str) -> Path:
    """A path as given, else a bare name under <data_dir>/raw/val_wavs/ (GeneFace's layout)."""
    for candidate in (Path(wav), Path(data_dir) / "raw" / "val_wavs" / wav):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"audio {wav!r} not found (looked at {wav} and {data_dir}/raw/val_wavs/{wav})")


def render_plan(cfg: DictConfig) -> tuple[str, str]:
    """(the stage that renders, the background): background=video renders the head alone (the
    speaker's frames have their real torso), and background=auto follows the stage (resolve_background)."""
    stage = renderer_stage(cfg.renderer, bool(cfg.head_only) or str(cfg.background) == VIDEO)
    return stage, resolve_background(cfg.background, stage)


def renderer_checkpoint(cfg: DictConfig) -> Path:
    stage, _ = render_plan(cfg)
    path = cfg.renderer_ckpt or Path(cfg.paths.output_dir) / cfg.speaker.name / stage / "best.ckpt"
    return upstream_checkpoint(path)     # missing: names the training command


def infer(cfg: DictConfig) -> dict[str, Path]:
    require_speaker_kind(cfg.speaker, "infer")
    audio_path = resolve_audio(str(cfg.wav), str(cfg.paths.data_dir))
    ckpt = upstream_checkpoint(cfg.postnet_ckpt)
    render_ckpt = renderer_checkpoint(cfg) if cfg.render else None   # fail before any work
    wave, mel, num_frames = load_driving_audio(audio_path, cfg.get("max_seconds"))   # before the models load
    torch.manual_seed(cfg.seed)
    model, _ = load_motion_model(ckpt, cfg.device)
    stats_root = Path(cfg.speaker.root)
    normalised, raw = speaker_landmarks(model, mel, num_frames, stats_root, cfg.temperature, cfg.clamp_std,
                                        cfg.smoothing, cfg.spoken_gain)
    out_dir = Path(cfg.out_dir)
    outputs = {"lm3d": out_dir / f"{audio_path.stem}_lm3d.npy",
               "lm3d_normalized": out_dir / f"{audio_path.stem}_lm3d_normalized.npy"}
    save_npy(outputs["lm3d"], raw)
    save_npy(outputs["lm3d_normalized"], normalised)
    if render_ckpt is not None:
        renderer = load_renderer(render_ckpt, cfg.device)
        stage, background = render_plan(cfg)
        outputs["video"] = out_dir / f"{audio_path.stem}_{stage}.mp4"
        with temporary_dir_beside(outputs["video"]) as tmp:
            wav16k = Path(tmp) / "audio.wav"                           # exactly T·640 samples at 16 kHz
            write_wav(wav16k, wave)
            render_video(renderer, stats_root, normalised, wav16k, outputs["video"], background=background,
                         pose_window=cfg.pose_smoothing, audio_features=mel)
    return outputs


@hydra.main(version_base="1.3", config_path="../configs", config_name="infer")
def main(cfg: DictConfig) -> None:
    set_threads(cfg.runtime.threads)
    with errors_as_exit():
        outputs = infer(cfg)
    print(f"landmarks: {outputs['lm3d']}")
    if "video" in outputs:
        print(f"video: {outputs['video']}")
    else:
        print(f"check them by eye: python -m geneface.viz npy={outputs['lm3d']} audio={cfg.wav} "
              f"mean_shape={cfg.speaker.root}")


if __name__ == "__main__":
    check_choices(sys.argv[1:])
    main()
