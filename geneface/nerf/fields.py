"""The names of what a field returns per sample, shared by the fields that write them and the
renderers and stages that read them (a typo is then an AttributeError, not a silent KeyError)."""

from __future__ import annotations

from enum import Enum


class FieldOutput(str, Enum):
    DENSITY = "density"    # [M] ≥ 0 (3D fields)
    RGB = "rgb"            # [M, 3] in [0, 1]
    AMBIENT = "ambient"    # [M, 2] RAD-NeRF's ambient coordinate, regularised outside the face
    ALPHA = "alpha"        # [M] in [0, 1] (the 2D torso field)
    DEFORM = "deform"      # [M, 2] the torso field's image-plane warp
