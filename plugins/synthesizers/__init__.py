"""DP synthesizers: AIM and MST (on the `pgm` engine), DP-CTGAN (DP-SGD on opacus)."""
