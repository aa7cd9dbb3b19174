"""DP synthesizers: AIM and MST (on the `pgm` engine)."""
