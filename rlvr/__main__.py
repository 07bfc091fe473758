"""``python -m rlvr``: the ``rlvr`` command line (:mod:`rlvr.cli`)."""

import sys

from rlvr.cli import main

sys.exit(main())
