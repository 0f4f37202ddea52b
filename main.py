"""``python main.py COMMAND ...``: the same as the ``visionlab`` command."""

import sys

from visionlab.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
