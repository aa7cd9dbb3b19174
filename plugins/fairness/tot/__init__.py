"""TOT: Calmon et al. (2017) optimized pre-processing, with its distortion language.

`TOT` is the transformer (registered as `tot`); `Distortion`, `Ordinal`, `Moves`,
`FunctionDistortion` and `FORBIDDEN` are the declarative distortion language it reads
(`safes_plugins.fairness.tot.distortion`); `ADULT` and `COMPAS` are the SAFES paper's metrics;
`generic` is the default for any other schema; `load_distortion` reads a distortion file.
"""

from .distortion import (
    ADULT,
    COMPAS,
    FORBIDDEN,
    Distortion,
    FunctionDistortion,
    GenericDistortionWarning,
    Moves,
    Ordinal,
    distortion_from_dict,
    generic,
    load_distortion,
)
from .transformer import TOT, safes_register_fairness_transformers

__all__ = [
    "ADULT",
    "COMPAS",
    "FORBIDDEN",
    "TOT",
    "Distortion",
    "FunctionDistortion",
    "GenericDistortionWarning",
    "Moves",
    "Ordinal",
    "distortion_from_dict",
    "generic",
    "load_distortion",
    "safes_register_fairness_transformers",
]
