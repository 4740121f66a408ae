"""The named train-time augmentations (``--augmentation``), free of torch.

Declared apart from their implementation (:mod:`cnnlens.data.augment`) so the CLI lists the
choices without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transform; the defaults are the study's."""

    rotation_deg: float = 15.0
    shear_deg: float = 0.1
    hflip: bool = True
    vflip: bool = True
    quarter_turns: bool = False  # rotate by a random multiple of 90 degrees
    #: stain jitter (H&E histology): each of the haematoxylin, eosin and residual optical
    #: densities is scaled by U(1-s, 1+s) and shifted by U(-s, s) (0: off)
    stain: float = 0.0


STUDY_AUGMENT = AugmentConfig()
DIHEDRAL_AUGMENT = AugmentConfig(rotation_deg=0.0, shear_deg=0.0, quarter_turns=True)
DIHEDRAL_STAIN_AUGMENT = AugmentConfig(rotation_deg=0.0, shear_deg=0.0, quarter_turns=True,
                                       stain=0.05)
#: Augmentations a recipe can name (``--augmentation``).
AUGMENTATIONS: dict[str, AugmentConfig] = {"study": STUDY_AUGMENT, "dihedral": DIHEDRAL_AUGMENT,
                                           "dihedral+stain": DIHEDRAL_STAIN_AUGMENT}


__all__ = ["AUGMENTATIONS", "DIHEDRAL_AUGMENT", "DIHEDRAL_STAIN_AUGMENT", "STUDY_AUGMENT",
           "AugmentConfig"]
