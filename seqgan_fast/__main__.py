"""``python -m seqgan_fast`` = the ``seqgan-fast`` console script."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
