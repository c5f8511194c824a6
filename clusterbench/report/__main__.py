"""`python -m clusterbench.report`: see clusterbench/report/__init__.py."""

import sys

from clusterbench.report.cli import main

sys.exit(main())
