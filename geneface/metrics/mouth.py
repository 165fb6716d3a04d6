"""Does a rendered mouth open when the real one does? Scores that need no pretrained weights.

`aperture_correlation`: the Pearson r, over a sequence, between the inner-lip opening re-detected on
generated frames and on the real ones (geneface.data.landmarks.inner_lip_aperture). A renderer that
ignores its condition keeps a near-constant mouth and scores ~0; one that follows it scores near 1.
"""

from __future__ import annotations

import numpy as np

from geneface.data.landmarks import inner_lip_aperture

MIN_FRAMES = 3          # a correlation over fewer frames says nothing


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson r of two [T] series over the frames where both are finite; None when under MIN_FRAMES
    such frames or either is constant there (r is undefined)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() < MIN_FRAMES:
        return None
    a, b = a[both] - a[both].mean(), b[both] - b[both].mean()
    scale = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / scale) if scale > 1e-12 else None


def aperture_correlation(generated68: np.ndarray, real68: np.ndarray) -> float | None:
    """[T, 68, ≥2] landmarks of generated and real frames (NaN rows: no face) → Pearson r of their
    inner-lip apertures, or None (see pearson)."""
    if len(generated68) != len(real68):
        raise ValueError(f"generated has {len(generated68)} frames and real has {len(real68)}; the aperture "
                         "correlation compares frame i with frame i")
    return pearson(inner_lip_aperture(generated68), inner_lip_aperture(real68))


STRIP_CROP = (80, 80)     # height, width of each mouth crop in the strip image (the mouth box is square)


def mouth_strip(rows: dict[str, list[np.ndarray]]) -> np.ndarray:
    """{row name: uint8 RGB mouth crops, one per chosen frame} → one uint8 [H, W, 3] image: a labelled
    row per name (truth, reconstruction, frozen, audio-driven), the same frames in each column, so a
    person sees at a glance whether the rendered mouth opens where the real one does."""
    import cv2

    h, w = STRIP_CROP
    label_w = 120
    lines = []
    for name, crops in rows.items():
        tiles = [cv2.resize(np.ascontiguousarray(c), (w, h), interpolation=cv2.INTER_AREA) for c in crops]
        label = np.full((h, label_w, 3), 255, np.uint8)
        cv2.putText(label, name, (4, h // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        lines.append(np.concatenate([label, *tiles], 1))
    width = max(line.shape[1] for line in lines)
    lines = [np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0)), constant_values=255) for line in lines]
    return np.concatenate(lines, 0)
