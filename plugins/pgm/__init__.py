"""The graphical-model engine AIM and MST share: measurements, junction trees, estimation, sampling.

It is the project's own implementation of mbi's algorithms (McKenna, Sheldon & Miklau 2019),
in numpy with mirror descent's inner loops in numba (`kernels`); the `mbi` package supplies
domains, model-size estimates and an alternative JAX estimator. Laid out as mbi is:
`domain`, `measurements`, `junction_tree`, `estimation`, `sampling`, plus `kernels`.
"""

import os

os.environ.setdefault("JAX_ENABLE_X64", "1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
# mbi builds many small programs; a persistent compilation cache only slows it down.
jax.config.update("jax_enable_compilation_cache", False)

from .domain import (  # noqa: E402
    Clique,
    JunctionTreeSizer,
    ModelSizeCache,
    domain,
    model_size_mb,
)
from .estimation import (  # noqa: E402
    DenseMirrorDescent,
    TreeFit,
    TreeMirrorDescent,
    estimate_graph,
    load_kernels,
)
from .junction_tree import JunctionTree, TreeMarginals  # noqa: E402
from .measurements import LOSS_WEIGHTINGS, MeasurementLog  # noqa: E402
from .sampling import sample_tree  # noqa: E402

# numba loads each compiled kernel from its disk cache on first call: done here, at import.
load_kernels()

__all__ = [
    "Clique",
    "DenseMirrorDescent",
    "JunctionTree",
    "JunctionTreeSizer",
    "LOSS_WEIGHTINGS",
    "MeasurementLog",
    "ModelSizeCache",
    "TreeFit",
    "TreeMarginals",
    "TreeMirrorDescent",
    "domain",
    "estimate_graph",
    "model_size_mb",
    "sample_tree",
]
