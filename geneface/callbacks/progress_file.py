"""Training progress for a parent process (geneface.utils.progress): the optimiser step out of
max_steps, which Lightning's own bar does not show (it counts batches of the current epoch)."""

from __future__ import annotations

import lightning as L

from geneface.utils.progress import report_progress


class ProgressFile(L.Callback):
    """Reports `<stage> training`, global_step / max_steps, after every training batch."""

    def __init__(self, stage_name: str):
        self.what = f"{stage_name} training"

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        report_progress(self.what, trainer.global_step, total, "step")

    def on_train_end(self, trainer: L.Trainer, *args) -> None:
        report_progress(self.what, trainer.global_step, trainer.global_step, "step")
