import logging
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def digits_cache(tmp_path_factory) -> Path:
    """The trained digits weights, one per test session (the path ``test_cli.py`` uses)."""
    path = tmp_path_factory.getbasetemp() / "digits-cache"
    path.mkdir(exist_ok=True)
    return path


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
