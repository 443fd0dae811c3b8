"""Evaluation: datasets, metrics (retrieval, answers, latency; judged ones register later), the
runner, reports and the baseline gate behind `rag eval` (see eval/cli.py)."""
