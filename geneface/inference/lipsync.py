"""Lip sync on held-out real clips: landmarks predicted from each clip's own audio against its real ones.

The held-out clips are a speaker dataset's val split (one clip: the last ~1/11 of the video) or every
val clip of a corpus (with the speaker-disjoint split, people the models never saw). Each clip gets
these rows, every one scored by geneface.metrics.lipsync against the clip's real landmarks:

- real: the clip's own landmarks. An oracle (r 1 at lag 0, LMD 0); its sync is the SyncNet's reference.
- model: the checkpoint's landmarks from the clip's audio. A corpus: the audio2motion VAE alone; a
  speaker: its postnet on the carried VAE, clamped and smoothed with the speaker's statistics exactly
  as geneface.infer does (`postprocess`).
- vae: for a postnet only, its carried VAE alone, so the postnet's own effect shows.
- loudness: the opening (and width) predicted by an affine map of the audio's frame energy, fit on the
  `fit_split` clips (train). The baseline any model must beat; no landmarks, so no LMD or sync.
- shuffled: the model on another clip's audio (the next held-out clip's, repeated or cut to length; a
  lone clip takes the fit split's): what an unsynced mouth with the model's motion scores.
- static: a mouth that never moves (idexp 0, the clip's rest shape): the LMD a model must beat.

The caller (geneface.evaluate_lipsync) writes the tables and the plot (inference/lipsync_report.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from geneface.data.corpus import read_index
from geneface.data.frames import arrays, train_indices, val_indices
from geneface.data.speaker import read_meta
from geneface.inference.evaluation import load_syncnet
from geneface.inference.landmarks import (MOTION_STAGES, VaeAsPredictor, clamp_and_smooth, load_motion_model,
                                          predict_idexp, resolve_spoken_gain)
from geneface.metrics.lipsync import (AffineFit, amplitude_ratio, frame_energy, lagged_pearson, lip_opening,
                                      mouth_lmd, mouth_width)
from geneface.metrics.sync import sync_score
from geneface.models.syncnet import WINDOW_FRAMES
from geneface.utils.checkpoints import read_checkpoint, upstream_checkpoint

ROWS = ("real", "model", "vae", "loudness", "shuffled", "static")
METRICS = ("aperture_r", "best_r", "best_lag", "width_r", "width_best_lag", "mouth_lmd", "amplitude", "sync")
LAG_OK = 1                  # |best lag| ≤ this many frames counts as in sync


@dataclass
class Clip:
    item_id: str
    group: str                 # the speaker: clips are averaged per group and over all clips
    mel: np.ndarray            # [2T, 80] log10 mel power
    idexp: np.ndarray          # [T, 68, 3] real idexp landmarks

    @property
    def num_frames(self) -> int:
        return len(self.idexp)


def process_hint(root: Path, kind: str) -> str:
    if kind == "corpus":
        return f"python -m geneface.process.corpus src=<dir of speaker/clip.mp4> name={root.name}"
    return f"python -m geneface.process speaker={root.name} video=<their video>.mp4"


def load_clips(root: str | Path, kind: str, split: str) -> list[Clip]:
    """A dataset's clips of one split: a corpus's clips of that split, or a speaker's split as one clip."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no dataset at {root}: process it first:\n    {process_hint(root, kind)}")
    if kind == "corpus":
        clips = []
        for entry in (e for e in read_index(root) if e.split == split):
            with np.load(root / entry.path) as data:
                mel, idexp = data["mel"], data["idexp_lm3d"]
            num = min(len(idexp), len(mel) // 2)
            clips.append(Clip(entry.item_id, entry.speaker, np.array(mel[: 2 * num]), np.array(idexp[:num])))
    else:
        meta, data = read_meta(root), arrays(root)
        frames = train_indices(meta) if split == "train" else val_indices(meta)
        first, stop = frames.start, frames.stop
        clips = [] if stop - first < 1 else [Clip(f"{meta['name']}/{split}", meta["name"],
                                                  np.array(data["mel"][2 * first: 2 * stop]),
                                                  np.array(data["idexp_lm3d"][first:stop]))]
    short = [c.item_id for c in clips if c.num_frames < WINDOW_FRAMES]
    if short:
        raise ValueError(f"{root}: clips {short} are shorter than {WINDOW_FRAMES} frames; nothing to score")
    if not clips:
        raise ValueError(f"{root} has no {split} clips" + (
            " (a corpus processed before the speaker-disjoint split may have only a few: re-run its "
            "processing command, which rebuilds index.tsv without re-processing finished clips)"
            if kind == "corpus" else ""))
    return clips


class Predictor:
    """audio → raw idexp from a trained audio2motion (the VAE samples) or postnet (VAE → postnet)
    checkpoint. `stats` (a speaker's idexp mean and std) post-process as geneface.infer does, the jaw
    and lips scaled by `spoken_gain` (auto: fitted on the train split of `speaker_root`, for the chain
    and for its VAE alone each), so the rows score the motion that infer renders."""

    def __init__(self, ckpt: str | Path, device: str = "cpu", temperature: float = 1.0, seed: int = 9999,
                 stats: tuple[np.ndarray, np.ndarray] | None = None, clamp_std: float = 2.5,
                 smoothing: float = 0.2, spoken_gain: str | float = 1.0, speaker_root: str | Path | None = None):
        self.ckpt = upstream_checkpoint(ckpt)
        checkpoint = read_checkpoint(self.ckpt, stages=MOTION_STAGES, role="ckpt")
        self.trained_syncnet = checkpoint["geneface_config"]["stage"]["model"].get("syncnet_ckpt")
        self.model, self.stage = load_motion_model(checkpoint, device)
        self.vae = VaeAsPredictor(self.model.vae).to(device).eval() if self.stage == "postnet" else None
        self.temperature, self.seed, self.stats = temperature, seed, stats
        self.clamp_std, self.smoothing = clamp_std, smoothing
        self.gains = {}                                      # "model" / "vae" → its jaw and lips' gain
        if stats is not None:
            for name, module in (("model", self.model), ("vae", self.vae)):
                if module is not None:
                    torch.manual_seed(seed)
                    self.gains[name] = resolve_spoken_gain(spoken_gain, module, speaker_root, temperature)

    def __call__(self, mel: np.ndarray, num_frames: int, vae_only: bool = False) -> np.ndarray:
        """mel [2T, 80] → raw idexp [T, 68, 3]; the same seed for every call, so a clip's prediction does
        not depend on which clips came before it."""
        torch.manual_seed(self.seed)
        raw = predict_idexp(self.vae if vae_only else self.model, mel, num_frames, self.temperature)
        if self.stats is None:
            return raw
        return clamp_and_smooth(raw, *self.stats, self.clamp_std, self.smoothing,
                                self.gains["vae" if vae_only else "model"])[1]


def repeat_to(mel: np.ndarray, num_frames: int) -> np.ndarray:
    """Another clip's mel [2T', 80] repeated or cut to [2T, 80]."""
    return mel[np.arange(2 * num_frames) % len(mel)]


def score_series(opening: np.ndarray, width: np.ndarray, clip: Clip, max_lag: int) -> dict:
    """The aperture and width scores of predicted [T] series against the clip's real ones."""
    real_opening = lip_opening(clip.idexp)
    aperture = lagged_pearson(opening, real_opening, max_lag)
    width_scores = lagged_pearson(width, mouth_width(clip.idexp), max_lag)
    return dict(aperture_r=aperture.r, best_lag=aperture.best_lag, best_r=aperture.best_r,
                aperture_by_lag={str(k): v for k, v in aperture.by_lag.items()},
                width_r=width_scores.r, width_best_lag=width_scores.best_lag,
                amplitude=amplitude_ratio(opening, real_opening), mouth_lmd=None, sync=None)


def score_landmarks(pred: np.ndarray, clip: Clip, syncnet: nn.Module | None, max_lag: int) -> dict:
    """Every score of predicted idexp [T, 68, 3] against the clip; sync against the clip's own audio."""
    row = score_series(lip_opening(pred), mouth_width(pred), clip, max_lag)
    row["mouth_lmd"] = mouth_lmd(pred, clip.idexp)
    if syncnet is not None:
        row["sync"] = sync_score(syncnet, torch.from_numpy(np.asarray(pred, np.float32)),
                                 torch.from_numpy(np.asarray(clip.mel, np.float32)))
    return row


def summarise(rows: list[dict]) -> dict:
    """Per-clip rows of one kind → the mean of each metric over the clips where it is defined, the
    median aperture r and `lag_ok`, the fraction of clips whose best lag is within ±LAG_OK."""
    out: dict = {"clips": len(rows)}
    for key in METRICS:
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    r_values = [r["aperture_r"] for r in rows if r.get("aperture_r") is not None]
    out["median_aperture_r"] = float(np.median(r_values)) if r_values else None
    lags = [r["best_lag"] for r in rows if r.get("best_lag") is not None]
    out["lag_ok"] = float(np.mean([abs(lag) <= LAG_OK for lag in lags])) if lags else None
    return out


def evaluate_lipsync(root: str | Path, kind: str, ckpt: str | Path, syncnet_ckpt: str | Path | None = None,
                     split: str = "val", fit_split: str = "train", max_lag: int = 5, temperature: float = 1.0,
                     seed: int = 9999, postprocess: bool = True, clamp_std: float = 2.5, smoothing: float = 0.2,
                     spoken_gain: str | float = 1.0, device: str = "cpu") -> tuple[dict, dict]:
    """Score the model and the baselines on the held-out clips → (result for JSON, series for the plot:
    {item_id: {row: [T] opening}} in idexp units, the real one included).

    syncnet_ckpt None: the SyncNet the model was trained against (its checkpoint records it); a missing
    one skips the sync column with a note. Checkpoint and data are checked before anything is scored."""
    start = time.perf_counter()
    clips, fit_clips = load_clips(root, kind, split), load_clips(root, kind, fit_split)
    stats = None
    if kind != "corpus" and postprocess:
        data = arrays(root)
        stats = (np.asarray(data["idexp_lm3d_mean"]), np.asarray(data["idexp_lm3d_std"]))
    predictor = Predictor(ckpt, device, temperature, seed, stats, clamp_std, smoothing, spoken_gain, root)
    syncnet_path = syncnet_ckpt if syncnet_ckpt is not None else predictor.trained_syncnet
    syncnet, note = load_syncnet(syncnet_path, device)
    notes = [note] if note else []
    energy_fit = [frame_energy(c.mel) for c in fit_clips]
    loud_opening = AffineFit.fit(energy_fit, [lip_opening(c.idexp) for c in fit_clips])
    loud_width = AffineFit.fit(energy_fit, [mouth_width(c.idexp) for c in fit_clips])

    per_clip, series = [], {}
    for i, clip in enumerate(clips):
        donor = clips[(i + 1) % len(clips)] if len(clips) > 1 else fit_clips[0]
        energy = frame_energy(clip.mel)
        preds = {"real": clip.idexp, "model": predictor(clip.mel, clip.num_frames)}
        if predictor.vae is not None:
            preds["vae"] = predictor(clip.mel, clip.num_frames, vae_only=True)
        preds["shuffled"] = predictor(repeat_to(donor.mel, clip.num_frames), clip.num_frames)
        preds["static"] = np.zeros_like(clip.idexp)
        rows = {name: score_landmarks(pred, clip, syncnet, max_lag) for name, pred in preds.items()}
        rows["loudness"] = score_series(loud_opening(energy), loud_width(energy), clip, max_lag)
        per_clip.append(dict(item_id=clip.item_id, group=clip.group, frames=clip.num_frames,
                             shuffled_audio_from=donor.item_id, rows={r: rows[r] for r in ROWS if r in rows}))
        series[clip.item_id] = {name: lip_opening(p) for name, p in preds.items() if name != "static"}
        series[clip.item_id]["loudness"] = loud_opening(energy)

    row_names = [r for r in ROWS if r in per_clip[0]["rows"]]
    groups = sorted({c["group"] for c in per_clip})
    result = dict(
        dataset=str(root), kind=kind, split=split, clips=per_clip,
        mean={r: summarise([c["rows"][r] for c in per_clip]) for r in row_names},
        groups={g: {r: summarise([c["rows"][r] for c in per_clip if c["group"] == g]) for r in row_names}
                for g in groups},
        model_stage=predictor.stage, model_ckpt=str(predictor.ckpt),
        syncnet_ckpt=None if syncnet is None else str(syncnet_path),
        loudness_fit=dict(split=fit_split, clips=len(fit_clips), opening=vars(loud_opening), width=vars(loud_width)),
        settings=dict(max_lag=max_lag, lag_ok=LAG_OK, temperature=temperature, seed=seed,
                      postprocess=stats is not None, clamp_std=clamp_std, smoothing=smoothing,
                      spoken_gain=predictor.gains),
        notes=notes, wall_s=time.perf_counter() - start)
    return result, series
