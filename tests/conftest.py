from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.support.netns import can_use_netns


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests marked "root" need root and network namespaces. CI runs as root, so there they
    # always run; on a developer machine without root they are skipped with the reason.
    if can_use_netns():
        return
    skip = pytest.mark.skip(reason="needs root and network namespaces (CI runs these)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _restore_racker_logger() -> Iterator[None]:
    """The CLI configures the "racker" logger (level, handler, no propagation); put it back
    after each test so later tests' caplog still sees racker's records."""
    logger = logging.getLogger("racker")
    level, handlers, propagate = logger.level, list(logger.handlers), logger.propagate
    yield
    logger.setLevel(level)
    logger.handlers[:] = handlers
    logger.propagate = propagate
