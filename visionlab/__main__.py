"""The ``visionlab`` command, ``python -m visionlab`` and ``python main.py``: :func:`visionlab.cli.main`, entered so
that Ctrl-C or SIGTERM at any moment ends in one line. Loading PyTorch takes seconds, and a signal then would
otherwise end in a traceback through the import machinery (or, for SIGTERM, in silence); so this module stays light
and imports the command line inside a try. The signal is also recorded as it arrives: a library that imports with a
bare ``except:`` swallows the KeyboardInterrupt, and the Ctrl-C would otherwise be lost (the run then goes on)."""

import os
import signal
import sys

from visionlab.util.errors import Terminated, terminate

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as in visionlab.cli
EXIT_TERMINATED = 143  # 128 + SIGTERM


def _stop_while_starting(signum: int) -> None:
    what = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
    print(f"visionlab: {what} while starting; nothing was written", file=sys.stderr, flush=True)
    # Out at once: the interpreter's clean-up of a half-imported PyTorch may itself end by the signal (exit -2).
    os._exit(EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED)


def main() -> int:
    received: list[int] = []

    def on_signal(signum, frame):
        received.append(signum)
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    try:
        from visionlab.cli import main as command_line  # the heavy imports: PyTorch, scikit-learn, every trainer
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the command line and the training loops set theirs
        signal.signal(signal.SIGTERM, terminate)
        if received:  # the KeyboardInterrupt was swallowed on the way
            raise Terminated if received[0] == signal.SIGTERM else KeyboardInterrupt
    except KeyboardInterrupt as stop:  # Terminated too
        _stop_while_starting(signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT)
    return command_line()


if __name__ == "__main__":
    sys.exit(main())
