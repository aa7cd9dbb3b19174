"""safes-framework: differentially private and fairer synthetic data (SAFES)."""

from .base import (
    FairnessOutput,
    FairnessTransformer,
    Metric,
    MetricInputs,
    MetricResult,
    StageContext,
    Synthesizer,
)
from .errors import SafesError
from .plugins import (
    fairness_transformer,
    get_plugin_manager,
    hookimpl,
    metric,
    register_plugin,
    synthesizer,
    unregister_plugin,
)
from .schema import Categorical, Continuous, Integer, QuantileBinned, Schema

__version__ = "0.1.0"

from .chain import SafesChain  # noqa: E402  (needs the names above)
from .release import PrivacyReport, Release, RunInfo  # noqa: E402

__all__ = [
    "Categorical",
    "Continuous",
    "FairnessOutput",
    "FairnessTransformer",
    "Integer",
    "Metric",
    "MetricInputs",
    "MetricResult",
    "PrivacyReport",
    "QuantileBinned",
    "Release",
    "RunInfo",
    "SafesChain",
    "SafesError",
    "Schema",
    "StageContext",
    "Synthesizer",
    "__version__",
    "fairness_transformer",
    "get_plugin_manager",
    "hookimpl",
    "metric",
    "register_plugin",
    "synthesizer",
    "unregister_plugin",
]
