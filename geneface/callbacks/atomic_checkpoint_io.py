"""Checkpoints written under a temporary sibling name and renamed into place.

Lightning 2.6 writes through an fsspec transaction whose temporary file lies in the system temp
directory; committing it is a copy when that is another filesystem (tmpfs), so a kill during the copy
left a truncated last.ckpt that the next resume tripped over. Here the bytes go to a hidden file beside
the checkpoint and one rename publishes them: a kill leaves the previous checkpoint whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from geneface.utils.io import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        with atomic_path(Path(path)) as tmp:
            torch.save(checkpoint, tmp)
