"""TOT: Calmon et al. (2017) optimized pre-processing, with its distortion language.

`TOT` is the transformer (registered as `tot`); `Distortion`, `Ordinal`, `Moves`,
`FunctionDistortion` and `FORBIDDEN` are the declarative distortion language it reads
(`safes_plugins.fairness.tot.distortion`); `ADULT` and `COMPAS` are the SAFES paper's metrics.
"""

from .distortion import ADULT, COMPAS, FORBIDDEN, Distortion, FunctionDistortion, Moves, Ordinal
from .transformer import TOT, safes_register_fairness_transformers

__all__ = [
    "ADULT",
    "COMPAS",
    "FORBIDDEN",
    "TOT",
    "Distortion",
    "FunctionDistortion",
    "Moves",
    "Ordinal",
    "safes_register_fairness_transformers",
]
