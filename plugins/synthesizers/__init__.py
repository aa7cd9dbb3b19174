"""Synthesizer plugins."""
