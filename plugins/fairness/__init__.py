"""Fairness transformers: TOT (optimized pre-processing, `tot/`) and reweighing."""
