"""``python -m rlstruct``: the ``rlstruct`` command, so that ``torchrun -m rlstruct train CONFIG.toml`` works
(torchrun starts modules or scripts, not console entry points)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
