"""`python -m bisect_driver` is `bisect-qemu`."""

import sys

from .cli import main

sys.exit(main())
