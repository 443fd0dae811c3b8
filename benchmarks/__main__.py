"""`python -m benchmarks [NAME...] [--json FILE]`: the same as `rag bench`."""

from benchmarks.cli import main

raise SystemExit(main())
