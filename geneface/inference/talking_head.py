"""Landmarks → rendered frames → mp4 with the audio (reference §9, steps 3–5).

The camera path is the training video's poses (train + val, in order), smoothed, and run back and
forth when the audio is longer than the video, so any length works (the original ran off the end).
With background=video a head-only renderer is pasted back into the speaker's own video instead: each
output frame is drawn over the source frame its camera comes from (SourceVideo), so the torso and the
background are the video's own, not a rendered torso over a still plate.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from geneface.data.frames import SpeakerFrames, arrays, head_removed
from geneface.inference.camera_path import driving_cameras, loop_indices
from geneface.inference.renderer import FrameRenderer
from geneface.media.mp4 import write_mp4

HEAD_STAGE = {"radnerf_torso": "radnerf", "nerf_torso": "nerf"}   # head_only: the torso stage's head
COLOURS = {"white": (255, 255, 255), "black": (0, 0, 0), "green": (0, 177, 64)}
VIDEO = "video"              # background=video: paste the head back into the speaker's own frames
AUTO = "auto"                # background=auto: video for a head-only stage, the plate under a rendered torso


class SourceVideo:
    """The backgrounds of a pasted-back video, decoded one at a time as the renderer asks: output frame
    k → source frame indices[k] with its head replaced (geneface.data.frames.head_removed).
    Array-like enough for render_frames (ndim, shape, len, [k]); all of them at once would be 0.8 MB a
    frame at 512², 1.2 GB a minute."""

    ndim = 4

    def __init__(self, frames: SpeakerFrames, indices: np.ndarray):
        self.frames, self.indices, self.plate = frames, np.asarray(indices), frames.background()

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.indices), self.frames.height, self.frames.width, 3)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> np.ndarray:
        i = int(self.indices[k])
        return head_removed(self.frames.image(i), self.frames.labels(i), self.plate)   # [H, W, 3] uint8


def renderer_stage(renderer: str, head_only: bool) -> str:
    if renderer not in ("radnerf_torso", "radnerf", "nerf_torso", "nerf"):
        raise ValueError(f"renderer must be radnerf_torso, radnerf, nerf_torso or nerf; got {renderer!r}")
    return HEAD_STAGE.get(renderer, renderer) if head_only else renderer


def resolve_background(spec: str, stage: str) -> str:
    """background=auto → `video` when `stage` renders the head alone (radnerf, nerf), `plate` when it
    draws the torso too: a head alone needs the video's real torso under it, and the rendered torso
    (24.3 dB on cnn2's full frames against 31.7 pasted back) is worth drawing only over a chosen backdrop."""
    spec = str(spec)
    if spec != AUTO:
        return spec
    return VIDEO if stage in HEAD_STAGE.values() else "plate"


def background_image(spec: str, plate: np.ndarray) -> np.ndarray:
    """`plate` (the speaker's background plate), a colour name, `#rrggbb`, or an image file (resized
    to the video's size) → uint8 [H, W, 3] RGB. (`video` is not one image: render_video.)"""
    h, w = plate.shape[:2]
    spec = str(spec)
    if spec == "plate":
        return plate
    if spec.lower() in COLOURS:
        return np.broadcast_to(np.array(COLOURS[spec.lower()], np.uint8), (h, w, 3)).copy()
    if re.fullmatch(r"#[0-9a-fA-F]{6}", spec):
        rgb = tuple(int(spec[i:i + 2], 16) for i in (1, 3, 5))
        return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()
    path = Path(spec)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    if image is None:
        raise ValueError(f"background {spec!r} is neither 'plate', 'video', a colour ({', '.join(COLOURS)}, "
                         f"#rrggbb) nor a readable image file")
    return cv2.cvtColor(cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


def render_video(renderer: FrameRenderer, speaker_root: str | Path, landmarks: np.ndarray, audio: Path,
                 out: Path, background: str = "plate", pose_window: int = 7,
                 audio_features: np.ndarray | None = None) -> Path:
    """Normalised landmarks [T, 68, 3] → `out` (h264 + aac, 25 fps, T frames), written atomically.

    background=video: a head-only renderer over the source frames (SourceVideo), each at that frame's
    own tracked camera, unsmoothed (pose_window is not used), so the head sits on the neck it was
    tracked on; smoothing would slide it off by the tracking noise the video's torso still has."""
    frames = SpeakerFrames(speaker_root)
    if (frames.height, frames.width) != (renderer.height, renderer.width):
        raise ValueError(f"the renderer was trained at {renderer.width}×{renderer.height} but {speaker_root} "
                         f"is {frames.width}×{frames.height}: pass the speaker it was trained on")
    if renderer.needs_audio and audio_features is None:
        raise ValueError("this renderer is conditioned on audio: pass audio_features (the driving mel [2T, 80])")
    source_c2w = renderer.source_cameras(np.asarray(arrays(speaker_root)["c2w"], np.float32))   # [T, 4, 4]
    if str(background) == VIDEO:
        if renderer.draws_torso:
            raise ValueError("background=video pastes a head into the speaker's own frames, whose torso is real: "
                             "pass a head-only renderer (infer: renderer=radnerf, or head_only=true)")
        indices = loop_indices(len(source_c2w), len(landmarks))
        cameras, backdrop = source_c2w[indices], SourceVideo(frames, indices)
    else:
        cameras = driving_cameras(source_c2w, len(landmarks), pose_window)
        backdrop = background_image(background, frames.background())
    stream = renderer.render_frames(cameras, landmarks, backdrop, audio_features=audio_features)
    return write_mp4(stream, out, width=renderer.width, height=renderer.height, audio=audio,
                     total=len(landmarks), desc="render")
