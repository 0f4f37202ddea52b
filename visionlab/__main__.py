"""``python -m visionlab ...``"""

import sys

from visionlab.cli import main

sys.exit(main())
