"""``python -m ran_core.cli`` (what ``torchrun`` launches for distributed training)."""

import sys

from ran_core.cli import main

sys.exit(main())
