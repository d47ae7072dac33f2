"""`python -m lotterylib`: the `lottery` command (lotterylib.cli)."""
import sys

from .cli import main

sys.exit(main())
