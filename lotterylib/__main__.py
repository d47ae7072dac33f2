"""`python -m lotterylib`: the `lottery` command (lotterylib.workflow.cli)."""
import sys

from .workflow.cli import main

sys.exit(main())
