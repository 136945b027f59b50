"""The one exception type that means "the user gave us something wrong"."""


class UserError(Exception):
    """A mistake in the user's input: reported as one line, exit status 2."""
