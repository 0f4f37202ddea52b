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
