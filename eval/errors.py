"""Errors of the evaluation suite; the CLI prints each as one line and exits 2."""


class EvalError(Exception):
    """A problem with the evaluation's inputs (dataset, index, baseline); the message names it."""


class DatasetError(EvalError, ValueError):
    """A dataset file that cannot be read; the message is one line naming the file and line."""


class BaselineError(EvalError):
    """A baseline file that cannot be read or does not fit the run; the message says why."""
