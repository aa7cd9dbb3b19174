"""The built-in metrics: dataset and model fairness, model and data utility, workload error."""

from __future__ import annotations

from safes_framework import hookimpl
from safes_framework.registry import Registry

from .fairness import MeanOutcomeDifference, ModelFairness
from .utility import MarginalTVD, ModelUtility, PropensityKS, WorkloadError

__all__ = [
    "MarginalTVD",
    "MeanOutcomeDifference",
    "ModelFairness",
    "ModelUtility",
    "PropensityKS",
    "WorkloadError",
]


@hookimpl
def safes_register_metrics(register: Registry) -> None:
    register.add(
        "mean_outcome_difference",
        MeanOutcomeDifference,
        description="dataset fairness: P(fav|unprivileged) - P(fav|privileged)",
    )
    register.add(
        "model_fairness",
        ModelFairness,
        description="SPD, AOD, EOD, FNR difference, DI of a model trained on the release",
    )
    register.add(
        "model_utility",
        ModelUtility,
        description="accuracy, F1, precision, recall, specificity, ROC AUC on real test",
    )
    register.add(
        "propensity_ks",
        PropensityKS,
        description="KS of real-vs-release propensity scores (the paper's)",
    )
    register.add(
        "tvd",
        MarginalTVD,
        description="mean TVD of all 1-, 2-, 3-way marginals (paper_compatible option)",
    )
    register.add(
        "workload_error", WorkloadError, description="mean L1/TVD over a workload of marginals"
    )
