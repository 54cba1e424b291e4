"""`python -m bisect_driver` is `bisect-qemu`."""

import sys

from bisect_driver.app.cli import main

sys.exit(main())
