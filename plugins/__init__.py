"""The built-in plugins of safes-framework (synthesizers, fairness transformers, metrics)."""
