"""The release index: parsing, and which release is an update or an upgrade (tables)."""

from __future__ import annotations

import json

import pytest

from racker.release.index import (
    ReleaseError,
    check_versions,
    describe_upgrade,
    parse_index,
    parse_version,
)

SHA = "ab" * 32
URL = "https://releases.example/racker/index.json"


def index(*versions: str, schema: int = 1, arch: str = "amd64") -> str:
    releases = [
        {
            "version": v,
            "state_schema": schema,
            "bundles": {arch: {"url": f"racker-{v}-linux-{arch}.tar.gz", "sha256": SHA}},
        }
        for v in versions
    ]
    return json.dumps({"releases": releases})


@pytest.mark.parametrize(
    ("installed", "available", "update", "upgrade"),
    [
        ("1.2.0", ["1.2.3", "2.0.0"], "1.2.3", "2.0.0"),
        ("1.2.0", ["1.2.3", "1.2.10", "1.3.0"], "1.2.10", "1.3.0"),  # numeric, not text order
        ("1.2.3", ["1.2.3", "1.2.0"], None, None),  # same or older: nothing
        ("1.2.0", ["1.2.1"], "1.2.1", None),  # the newest is the update: no separate upgrade
        ("1.2.0", ["0.9.0", "2.0.0"], None, "2.0.0"),
        ("1.2.0", [], None, None),
    ],
)
def test_update_and_upgrade(
    installed: str, available: list[str], update: str | None, upgrade: str | None
) -> None:
    found = check_versions(parse_index(index(*available), URL), installed, "amd64")
    assert (found.update and found.update.version) == update
    assert (found.upgrade and found.upgrade.version) == upgrade


def test_a_release_without_a_bundle_for_this_arch_is_not_offered() -> None:
    found = check_versions(parse_index(index("1.2.5", arch="arm64"), URL), "1.2.0", "amd64")
    assert found.update is None and found.upgrade is None


def test_bundle_urls_are_resolved_against_the_index() -> None:
    release = parse_index(index("1.2.3"), URL).releases[0]
    assert release.bundles["amd64"].url == (
        "https://releases.example/racker/racker-1.2.3-linux-amd64.tar.gz"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"versions": []}', "'releases' list"),
        (index("1.2"), "not a version"),
        (index("1.2.3", "1.2.3"), "listed twice"),
        (index("1.2.3").replace(SHA, "123"), "64 hexadecimal"),
        (index("1.2.3").replace('"state_schema": 1', '"state_schema": "x"'), "state_schema"),
        ('{"releases": [{"version": "1.0.0", "state_schema": 1, "bundles": {}}]}', "bundles"),
    ],
)
def test_a_bad_index_is_refused_with_where(text: str, message: str) -> None:
    with pytest.raises(ReleaseError, match=message) as err:
        parse_index(text, URL)
    assert URL in err.value.message


@pytest.mark.parametrize("text", ["1", "1.2", "1.2.3.4", "01.2.3", "v1.2.3", "1.2.3-rc1"])
def test_versions_are_major_minor_patch(text: str) -> None:
    with pytest.raises(ReleaseError):
        parse_version(text)


def test_describe_upgrade_names_incompatibility_and_schema_migration() -> None:
    release = parse_index(index("2.0.0", schema=3), URL).releases[0]
    text = "\n".join(describe_upgrade("1.2.0", 2, release))
    assert "1.2.0 -> 2.0.0" in text
    assert "incompatible: 1.2 -> 2.0" in text
    assert "schema 2 -> 3" in text
    compatible = parse_index(index("1.2.5", schema=2), URL).releases[0]
    assert describe_upgrade("1.2.0", 2, compatible) == ["racker 1.2.0 -> 1.2.5"]
