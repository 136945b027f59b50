"""The two exceptions reported as one line: a user's mistake, and a run that had to stop."""

import pytest

from evoquant.errors import RunStopped, UserError


def test_a_stopped_run_is_not_blamed_on_the_user():
    assert not issubclass(RunStopped, UserError)
    assert not issubclass(UserError, RunStopped)


@pytest.mark.parametrize("error", [UserError, RunStopped])
def test_neither_is_mistaken_for_a_bug_or_a_system_error(error):
    """Caught apart from OSError (reported with its file name) and from the errors of
    bugs (ValueError, TypeError keep their traceback); a plain ``except Exception``
    still sees them."""
    assert issubclass(error, Exception)
    for other in (OSError, ValueError, TypeError, KeyboardInterrupt):
        assert not issubclass(error, other)
