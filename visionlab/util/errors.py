"""Errors that visionlab reports to its user in one line.

Anything a user can cause (a missing file, a bad option, data in the wrong format, a loss that turned into NaN) is
raised as a :class:`VisionlabError`. The command line prints its message and exits with status 2, without a
traceback; in interpreter mode it is an ordinary exception with a readable message.
"""


class VisionlabError(Exception):
    """A problem the user can fix; its message says what is wrong and where."""


class ConfigError(VisionlabError, ValueError):
    """An option has a value outside its allowed range."""


class DataError(VisionlabError):
    """Input data is missing, unreadable or has the wrong shape, channels or range."""


class TrainingError(VisionlabError):
    """Training cannot go on (e.g. the loss became NaN); the message names the last good checkpoint."""


class MachineError(VisionlabError):
    """The machine refused what a run needs (a folder it may not write, a full disk, too little memory); the message
    says what to do instead."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a cluster's time limit, ``timeout``, ``kill``) outside a training loop, or a second one inside it:
    stop now. A KeyboardInterrupt, so that whatever cleans up after Ctrl-C (atomic writes, progress bars) does so
    here too; a first SIGTERM during training stops the run after its step instead, as Ctrl-C does."""


def terminate(signum, frame) -> None:
    """The SIGTERM handler outside training loops (``signal.signal(signal.SIGTERM, terminate)``): raise
    :class:`Terminated`, which the command line reports in one line with exit status 143."""
    raise Terminated
