"""Baseline Generation System: measurement calculators, signed baselines, transparency log."""
