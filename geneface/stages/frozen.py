"""Upstream networks a stage uses but never trains (the SyncNet critic, the corpus VAE, a torso's head).

They are held outside the module tree, so they are not optimised, not in the stage's state_dict and
not moved or switched to train mode by Lightning: they stay in eval mode for the whole run. The
original's trainer put them back in train mode after every validation (reference §0, quirk fixed).

Some of them are *carried*: written into every checkpoint of the stage that uses them, so that
checkpoint alone is enough at inference (the postnet carries its VAE, a torso its head). There is
one way to carry, for every stage: the upstream stage's whole checkpoint config and weights under
`checkpoint["carried"][name]`, rebuilt by `load_stage` exactly as if read from its own file.
"""

from __future__ import annotations

import torch
from torch import nn

CARRIED_KEY = "carried"
OLD_CARRIED_KEYS = ("torso_head", "postnet_vae")    # written before one way to carry existed


class FrozenNets:
    """Mixin for a LightningModule (list it before `L.LightningModule`)."""

    @property
    def frozen(self) -> dict[str, nn.Module]:
        return self.__dict__.setdefault("_frozen", {})

    @property
    def _carried_configs(self) -> dict[str, dict]:
        return self.__dict__.setdefault("_carried", {})

    def attach_frozen(self, **nets: nn.Module | None) -> None:
        for name, net in nets.items():
            if net is not None:
                self.frozen[name] = net.eval().requires_grad_(False)

    def carry(self, name: str, stage: nn.Module, config: dict) -> None:
        """Attach a frozen upstream *stage* and write it into this stage's checkpoints; `config` is
        the `geneface_config` of the checkpoint it came from."""
        self.attach_frozen(**{name: stage})
        self._carried_configs[name] = config

    def carry_upstream(self, name: str, path, hint: str = "", stages: tuple[str, ...] | None = None,
                       role: str = "") -> nn.Module:
        """Load an upstream stage's checkpoint (MissingCheckpointError names the command that trains
        it, plus `hint`; one of other `stages` than these is refused naming `role`), carry it under
        `name` and return it."""
        from geneface.utils.checkpoints import load_stage, read_checkpoint, upstream_checkpoint

        checkpoint = read_checkpoint(upstream_checkpoint(path, hint), stages=stages, role=role or name)
        stage = load_stage(checkpoint)
        self.carry(name, stage, checkpoint["geneface_config"])
        return stage

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

    # --- checkpoints ----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        carried = {name: {"geneface_config": config,
                          "state_dict": {k: v.cpu() for k, v in self.frozen[name].state_dict().items()}}
                   for name, config in self._carried_configs.items() if name in self.frozen}
        if carried:
            checkpoint[CARRIED_KEY] = carried

    def on_load_stage(self, checkpoint: dict) -> None:
        """Called by load_stage before the weights: rebuild the carried upstream stages."""
        from geneface.utils.checkpoints import load_stage

        old = [key for key in OLD_CARRIED_KEYS if key in checkpoint]
        if old:
            raise ValueError(f"this {type(self).__name__} checkpoint carries its upstream net in the format of "
                             f"geneface before the renderer-stage base (key {old[0]!r}); train this stage again "
                             f"(its upstream checkpoints still load)")
        for name, stored in checkpoint.get(CARRIED_KEY, {}).items():
            self.carry(name, load_stage(stored), stored["geneface_config"])
