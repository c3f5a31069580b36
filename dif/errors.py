"""Errors that mean "the user gave us something wrong" (exit code 2 in the scripts)."""


class DIFError(Exception):
    """A user-facing error: bad arguments, paths, images or checkpoints.

    Scripts print ``error: <message>`` on one line and exit with code 2.
    """
