"""``python -m bench``: run the benchmark suite; ``--help`` lists the options."""

from __future__ import annotations

import sys

from bench._run import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
