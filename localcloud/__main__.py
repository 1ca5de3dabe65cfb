"""`python -m localcloud` is the `mlops` command."""

import sys

from localcloud.cli import main

sys.exit(main())
