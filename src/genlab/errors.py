"""The one error type that means "bad usage or bad input"."""


class GenlabError(Exception):
    """Bad usage or bad input. The CLI prints its message on one line and exits with status 2."""


class GenlabWarning(UserWarning):
    """Something the user should know that does not stop the work (the CLI prints it as one line)."""
