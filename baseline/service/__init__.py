"""The Baseline Generation System service: publishes signed baselines into the transparency log."""
