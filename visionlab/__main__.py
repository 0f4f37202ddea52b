"""The ``visionlab`` command, ``python -m visionlab`` and ``python main.py``: :func:`visionlab.cli.main`, entered so
that Ctrl-C or SIGTERM at any moment ends in one line. Loading PyTorch takes seconds, and a signal then would
otherwise end in a traceback through the import machinery (or, for SIGTERM, in silence); so this module stays light
and imports the command line inside a try."""

import os
import signal
import sys

from visionlab.util.errors import Terminated, terminate

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as in visionlab.cli
EXIT_TERMINATED = 143  # 128 + SIGTERM


def main() -> int:
    signal.signal(signal.SIGTERM, terminate)  # the command line and every training loop set their own
    try:
        from visionlab.cli import main as command_line  # the heavy imports: PyTorch, scikit-learn, every trainer
    except KeyboardInterrupt as stop:  # Terminated too
        what = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"
        print(f"visionlab: {what} while starting; nothing was written", file=sys.stderr, flush=True)
        # Out at once: the interpreter's clean-up of a half-imported PyTorch may itself end by the signal (exit -2).
        os._exit(EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED)
    return command_line()


if __name__ == "__main__":
    sys.exit(main())
