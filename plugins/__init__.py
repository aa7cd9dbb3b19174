"""The built-in plugins of safes-framework (synthesizers, fairness transformers, metrics)."""

import os

# mbi needs JAX in float64; set it before any built-in plugin imports JAX or mbi.
os.environ.setdefault("JAX_ENABLE_X64", "1")
