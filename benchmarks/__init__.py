"""Reproducible speed and quality benchmarks, and `rag bench`, which runs them as one suite.

Each benchmark is a script in this folder that prints its figures and, with `--json FILE`,
writes them; `benchmarks/suite.py` runs the chosen ones as child processes of one command and
prints one table with the ratios against the floor and stock llama-index. Importing this package
does nothing else: `rag --help` loads its `add_command` through the `rag.commands` entry point.
"""
