"""Metrics, statistics, baselines, evaluation (compute only), references, Grad-CAM."""
