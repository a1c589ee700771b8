from __future__ import annotations

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
