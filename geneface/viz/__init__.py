"""Visual checks: `python -m geneface.viz npy=<idexp_lm3d.npy> [audio=<file>]` renders landmarks to an mp4."""

from geneface.viz.landmarks_video import RenderOptions, write_landmarks_video

__all__ = ["RenderOptions", "write_landmarks_video"]
