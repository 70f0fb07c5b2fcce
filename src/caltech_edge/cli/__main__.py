"""``python -m caltech_edge.cli ...``: what ``torchrun -m caltech_edge.cli train`` runs."""

import sys

from . import main

sys.exit(main())
