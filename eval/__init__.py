"""Evaluation (DeepEval metrics, retrieval metrics, regression suite): filed for a later issue."""
