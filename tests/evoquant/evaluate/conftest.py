import logging

import pytest


@pytest.fixture(autouse=True)
def restore_logging():
    """The CLI adds handlers to the root logger and lowers its level: undo after each test."""
    root, package = logging.getLogger(), logging.getLogger("evoquant")
    handlers, levels = list(root.handlers), (root.level, package.level)
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(levels[0])
    package.setLevel(levels[1])
