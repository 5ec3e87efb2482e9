"""`python -m trtnet`: the same command line as the `trtnet` console script."""

import sys

from trtnet.cli import main

sys.exit(main())
