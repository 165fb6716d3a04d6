"""Lip sync of predicted landmarks next to real and off-sync ones, on a speaker's val audio.

    .venv/bin/python scripts/eval_landmark_sync.py --speaker-root outputs/data/cnn2 \
        --syncnet outputs/lrs3/syncnet/best.ckpt --postnet outputs/cnn2/postnet/selected.ckpt [--samples 5]

Prints the landmark SyncNet's mean score (cosine in [0, 1], higher = better synced; our landmark
stand-in for Sync-C, see ../shared/design/anchors.md) for: the speaker's real val landmarks, the same
shifted by 5 frames against the audio, and the postnet's predictions from the val audio (median of
several samples, since the VAE samples).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch

from geneface.data.speaker import read_meta
from geneface.inference.landmarks import predict_idexp
from geneface.metrics.sync import sync_score
from geneface.utils.checkpoints import load_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speaker-root", type=Path, required=True)
    parser.add_argument("--syncnet", type=Path, required=True)
    parser.add_argument("--postnet", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--shift", type=int, default=5)
    args = parser.parse_args()

    meta = read_meta(args.speaker_root)
    start = meta["num_train"]
    mel = np.load(args.speaker_root / "mel.npy")[2 * start :]
    real = np.load(args.speaker_root / "idexp_lm3d.npy")[start:]
    syncnet = load_stage(args.syncnet).net
    postnet = load_stage(args.postnet)
    mel_t, real_t = torch.from_numpy(mel).float(), torch.from_numpy(real).float()

    rows = [("real val landmarks", sync_score(syncnet, real_t, mel_t)),
            (f"real, audio shifted {args.shift} frames", sync_score(syncnet, real_t, mel_t, offset=args.shift))]
    scores = []
    for seed in range(args.samples):
        torch.manual_seed(seed)
        pred = predict_idexp(postnet, mel, len(real))
        scores.append(sync_score(syncnet, torch.from_numpy(pred), mel_t))
    rows.append((f"predicted (postnet, median of {args.samples})", statistics.median(scores)))
    print(f"\nlandmark sync score on {meta['name']}'s val split ({len(real)} frames), higher is better\n")
    print("| landmarks | sync score |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value:.3f} |")


if __name__ == "__main__":
    main()
