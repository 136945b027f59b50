"""``problems.base``: the old import path of the problem protocol goes on working."""

import evoquant.api
from problems import base


def test_problems_base_is_the_public_api_under_its_old_name():
    assert base.__all__ == evoquant.api.__all__
    for name in evoquant.api.__all__:
        assert getattr(base, name) is getattr(evoquant.api, name), name
