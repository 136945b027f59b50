"""The exceptions the command line reports as one line: the user's mistakes, stopped runs."""


class UserError(Exception):
    """A mistake in the user's input: reported as one line, exit status 2."""


class RunStopped(Exception):
    """A run cannot go on, through no mistake of the user's (every Ray worker lost):
    reported as one line, exit status 2, like a ``UserError``; the run dir resumes."""
