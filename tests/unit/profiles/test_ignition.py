"""The structural Ignition check: good configs pass, each typical mistake is named."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from racker.profiles import check_ignition

GOOD: dict[str, Any] = {
    "ignition": {"version": "3.3.0"},
    "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": ["ssh-ed25519 AAAA x"]}]},
    "storage": {
        "files": [
            {"path": "/etc/hostname", "mode": 0o644, "overwrite": True,
             "contents": {"source": "data:,node-1%0A"}},
            {"path": "/opt/a.sh", "mode": 0o755, "contents": {"source": "data:;base64,ZWNobw=="}},
            {"path": "/opt/b", "contents": {"source": "http://10.0.0.1:8080/assets/b",
             "verification": {"hash": "sha512-" + "ab" * 64}}},
        ],
        "directories": [{"path": "/etc/racker", "mode": 0o755}],
        "links": [{"path": "/etc/localtime", "target": "/usr/share/zoneinfo/UTC"}],
    },
    "systemd": {"units": [
        {"name": "racker-install.service", "enabled": True, "contents": "[Unit]\n"},
        {"name": "getty@tty1.service", "dropins": [{"name": "autologin.conf", "contents": ""}]},
        {"name": "fstrim.timer", "mask": True},
    ]},
}  # fmt: skip


def test_good_config_passes() -> None:
    assert check_ignition(GOOD) == []


def _set(config: dict[str, Any], path: str, value: Any) -> None:
    keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
    target: Any = config
    for key in keys[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value


_DELETE = object()

# (case, path to change in GOOD, new value, expected fragment of the problem)
BAD = [
    ("version 2.x", "ignition.version", "2.3.0", "3.x spec version"),
    ("version as a number", "ignition.version", 3.3, "expected str"),
    ("version missing", "ignition.version", _DELETE, "3.x spec version"),
    ("mode as octal-looking text", "storage.files.0.mode", "0644", "expected int"),
    ("mode too large", "storage.files.0.mode", 0o17777, "0..0o7777"),
    ("mode negative", "storage.files.0.mode", -1, "0..0o7777"),
    ("mode as bool", "storage.files.0.mode", True, "expected int"),
    ("relative path", "storage.files.0.path", "etc/hostname", "must be absolute"),
    ("duplicate path", "storage.files.1.path", "/etc/hostname", "declared twice"),
    ("directory and file at one path", "storage.directories.0.path", "/opt/a.sh", "declared twice"),
    ("overwrite as text", "storage.files.0.overwrite", "yes", "expected bool"),
    ("unit without suffix", "systemd.units.0.name", "racker-install", "not a unit name"),
    ("unit with a bad suffix", "systemd.units.0.name", "racker.servic", "not a unit name"),
    ("unit name with a space", "systemd.units.0.name", "my unit.service", "not a unit name"),
    ("duplicate unit", "systemd.units.2.name", "racker-install.service", "declared twice"),
    ("enabled as text", "systemd.units.0.enabled", "true", "expected bool"),
    ("drop-in without .conf", "systemd.units.1.dropins.0.name", "autologin", ".conf"),
    ("data URL without comma", "storage.files.0.contents.source", "data:node-1", "without ','"),
    ("data URL with bad base64", "storage.files.1.contents.source", "data:;base64,!!!", "base64"),
    ("file:// source", "storage.files.0.contents.source", "file:///etc/passwd", "scheme"),
    ("relative URL", "storage.files.0.contents.source", "/assets/x", "scheme"),
    ("http URL without host", "storage.files.2.contents.source", "http:///x", "without a host"),
    ("bad hash", "storage.files.2.contents.verification.hash", "md5-00", "sha512-HEX"),
    ("compression unknown", "storage.files.2.contents.compression", "bzip2", "gzip"),
    (
        "ssh keys not a list",
        "passwd.users.0.sshAuthorizedKeys",
        "ssh-ed25519 AAAA",
        "expected a list",
    ),
    ("ssh key not a string", "passwd.users.0.sshAuthorizedKeys", [1], "expected a string"),
    ("user without name", "passwd.users.0.name", _DELETE, "required"),
    ("unknown top-level key", "networkd", {"units": []}, "unknown field"),
    ("unknown file key", "storage.files.0.contents_", "x", "unknown field"),
    ("files not a list", "storage.files", {"path": "/x"}, "expected a list"),
    ("link without target", "storage.links.0.target", _DELETE, "required"),
]


@pytest.mark.parametrize(("case", "path", "value", "fragment"), BAD)
def test_bad_configs_are_rejected(case: str, path: str, value: Any, fragment: str) -> None:
    config = copy.deepcopy(GOOD)
    _set(config, path, value)
    problems = check_ignition(config)
    assert problems, case
    assert any(fragment in p for p in problems), f"{case}: {problems}"


@pytest.mark.parametrize("config", [None, [], "text", {"storage": {}}])
def test_not_an_ignition_config(config: Any) -> None:
    assert check_ignition(config)
