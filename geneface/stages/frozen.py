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
