"""Upstream networks a stage uses but never trains (the SyncNet critic, the corpus VAE).

They are held outside the module tree, so they are not optimised, not in the stage's state_dict and
not moved or switched to train mode by Lightning: they stay in eval mode for the whole run. The
original's trainer put them back in train mode after every validation (reference §0, quirk fixed).
"""

from __future__ import annotations

import torch
from torch import nn


class FrozenNets:
    """Mixin for a LightningModule (list it before `L.LightningModule`)."""

    @property
    def frozen(self) -> dict[str, nn.Module]:
        return self.__dict__.setdefault("_frozen", {})

    def attach_frozen(self, **nets: nn.Module | None) -> None:
        for name, net in nets.items():
            if net is not None:
                self.frozen[name] = net.eval().requires_grad_(False)

    def frozen_on(self, name: str, device: torch.device) -> nn.Module:
        """The frozen net `name`, moved to `device` once (Lightning does not move it)."""
        net = self.frozen[name]
        if next(net.parameters()).device != device:
            self.frozen[name] = net = net.to(device)
        return net

    def train(self, mode: bool = True):
        super().train(mode)
        for net in self.frozen.values():
            net.eval()                      # never back to train mode
        return self


HEAD_KEY = "torso_head"


class CarriedHead(FrozenNets):
    """Mixin for the torso stages: a frozen head stage, loaded from `self.head_ckpt` at set-up and
    carried inside every checkpoint of this stage (config + weights), so a torso checkpoint alone
    renders whole frames. `head_stage` names the head's stage in error messages."""

    head_stage = "radnerf"

    @property
    def head(self):
        return self.frozen.get("head")

    def attach_head(self, head, config: dict) -> None:
        self.attach_frozen(head=head)
        self._head_config = config

    def setup(self, stage: str) -> None:
        from geneface.utils.checkpoints import load_stage, upstream_checkpoint

        if self.head is None:
            if self.head_ckpt is None:
                raise ValueError("this torso stage needs a trained head: set stage.model.head_ckpt")
            hint = f"\n(the torso is trained under a trained head: train stage={self.head_stage} first)"
            checkpoint = torch.load(upstream_checkpoint(self.head_ckpt, hint), map_location="cpu",
                                    weights_only=False)
            self.attach_head(load_stage(checkpoint), checkpoint["geneface_config"])

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        config = getattr(self, "_head_config", None)
        if self.head is not None and config is not None:
            checkpoint[HEAD_KEY] = {"geneface_config": config,
                                    "state_dict": {k: v.cpu() for k, v in self.head.state_dict().items()}}

    def on_load_stage(self, checkpoint: dict) -> None:
        """Called by load_stage before the weights: rebuild the frozen head stored in the checkpoint."""
        from geneface.utils.checkpoints import load_stage

        stored = checkpoint.get(HEAD_KEY)
        if stored is not None:
            self.attach_head(load_stage(stored), stored["geneface_config"])

    def _head(self):
        if self.head is None:
            raise RuntimeError("no head attached: load the module with geneface.utils.checkpoints.load_stage")
        return self.frozen_on("head", self.device)
