"""A structural check of Ignition v3 configs (layer 1: pure).

Not a full validator (Ignition itself is the reference): it catches what a template mistake
typically produces, before a node downloads the config and stops in its initramfs with an
error on a console nobody watches. Checked: spec version 3.x, the type of each field racker's
profiles use, unit names and their suffixes (systemd.unit(5)), file modes (ints 0..0o7777,
not the octal-looking decimal 644), absolute paths, unique paths and unit names, and that
``contents.source`` is a well-formed URL (RFC 2397 data URLs are decoded).
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

VERSION_RE = re.compile(r"^3\.[0-5]\.0(-experimental)?$")
UNIT_SUFFIXES = (
    ".service",
    ".socket",
    ".device",
    ".mount",
    ".automount",
    ".swap",
    ".target",
    ".path",
    ".timer",
    ".slice",
    ".scope",
)
# systemd.unit(5): unit names are [A-Za-z0-9:_.\\-] plus at most one '@' (templates).
UNIT_NAME_RE = re.compile(r"^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?$")
URL_SCHEMES = ("data", "http", "https", "tftp", "s3", "gs", "arn")

_TOP = {"ignition", "storage", "systemd", "passwd", "kernelArguments"}


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def bad(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def mapping(self, value: Any, path: str, known: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.bad(path, f"expected an object, got {type(value).__name__}")
            return {}
        for key in value:
            if key not in known:
                self.bad(f"{path}.{key}", "unknown field")
        return value

    def typed(self, obj: dict[str, Any], key: str, path: str, kind: type | tuple[type, ...]) -> Any:
        value = obj.get(key)
        # bool is an int in Python; Ignition (Go) does not accept true for a number.
        wrong_bool = isinstance(value, bool) and kind is int
        if value is not None and (wrong_bool or not isinstance(value, kind)):
            name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            self.bad(f"{path}.{key}", f"expected {name}, got {type(value).__name__}")
            return None
        return value

    def items(self, obj: dict[str, Any], key: str, path: str) -> list[tuple[str, Any]]:
        value = obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.bad(f"{path}.{key}", "expected a list")
            return []
        return [(f"{path}.{key}[{i}]", item) for i, item in enumerate(value)]

    def strings(self, obj: dict[str, Any], key: str, path: str) -> None:
        for where, item in self.items(obj, key, path):
            if not isinstance(item, str):
                self.bad(where, "expected a string")

    def abs_path(self, obj: dict[str, Any], path: str, seen: set[str]) -> None:
        value = self.typed(obj, "path", path, str)
        if value is None:
            self.bad(f"{path}.path", "required")
        elif not value.startswith("/"):
            self.bad(f"{path}.path", f"must be absolute, got {value!r}")
        elif value in seen:
            self.bad(f"{path}.path", f"{value} is declared twice")
        else:
            seen.add(value)

    def mode(self, obj: dict[str, Any], path: str) -> None:
        value = self.typed(obj, "mode", path, int)
        if value is not None and not 0 <= value <= 0o7777:
            self.bad(f"{path}.mode", f"must be 0..0o7777 (e.g. 420 for 0644), got {value}")

    def owner(self, obj: dict[str, Any], path: str) -> None:
        for key in ("user", "group"):
            if key in obj:
                sub = self.mapping(obj[key], f"{path}.{key}", {"id", "name"})
                self.typed(sub, "id", f"{path}.{key}", int)
                self.typed(sub, "name", f"{path}.{key}", str)

    def resource(self, value: Any, path: str) -> None:
        res = self.mapping(value, path, {"source", "compression", "verification", "httpHeaders"})
        source = self.typed(res, "source", path, str)
        if source is not None:
            problem = url_problem(source)
            if problem:
                self.bad(f"{path}.source", problem)
        compression = self.typed(res, "compression", path, str)
        if compression not in (None, "", "gzip"):
            self.bad(f"{path}.compression", f"must be gzip or empty, got {compression!r}")
        if "verification" in res:
            ver = self.mapping(res["verification"], f"{path}.verification", {"hash"})
            digest = self.typed(ver, "hash", f"{path}.verification", str)
            if digest is not None and not re.match(r"^(sha512|sha256)-[0-9a-f]+$", digest):
                self.bad(f"{path}.verification.hash", "expected sha512-HEX or sha256-HEX")


def url_problem(source: str) -> str | None:
    """Why ``source`` is not a usable Ignition URL, or None."""
    scheme = source.split(":", 1)[0].lower() if ":" in source else ""
    if scheme not in URL_SCHEMES:
        return f"unsupported URL scheme in {source[:40]!r} (use data: or http(s):)"
    if scheme == "data":
        # RFC 2397: data:[<mediatype>][;base64],<data>
        header, comma, payload = source[5:].partition(",")
        if not comma:
            return "data URL without ',' (RFC 2397: data:[<mediatype>][;base64],<data>)"
        if header.endswith(";base64"):
            try:
                base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                return "data URL with invalid base64"
        else:
            try:
                urllib.parse.unquote(payload, errors="strict")
            except UnicodeDecodeError:
                return "data URL with invalid percent-encoding"
        return None
    if scheme in ("http", "https", "tftp"):
        parts = urllib.parse.urlsplit(source)
        if not parts.hostname:
            return f"URL without a host: {source[:60]!r}"
    return None


def check_ignition(config: Any) -> list[str]:
    """Problems found in an Ignition v3 config (empty list: structurally fine)."""
    c = _Checker()
    top = c.mapping(config, "$", _TOP)
    if not isinstance(config, dict):
        return c.problems
    ign = c.mapping(
        top.get("ignition"), "$.ignition", {"version", "config", "timeouts", "security", "proxy"}
    )
    version = c.typed(ign, "version", "$.ignition", str)
    if version is None or not VERSION_RE.match(version):
        c.bad("$.ignition.version", f"must be a 3.x spec version like 3.3.0, got {version!r}")
    if isinstance(ign.get("config"), dict):
        for kind in ("merge", "replace"):
            raw = ign["config"].get(kind)
            entries = raw if isinstance(raw, list) else [raw] if raw else []
            for i, entry in enumerate(entries):
                c.resource(entry, f"$.ignition.config.{kind}[{i}]")
    sections: list[tuple[str, Callable[[_Checker, dict[str, Any]], None]]] = [
        ("storage", _storage),
        ("systemd", _systemd),
        ("passwd", _passwd),
    ]
    for name, check in sections:
        if name in top:
            check(c, top[name])
    if "kernelArguments" in top:
        args = c.mapping(
            top["kernelArguments"], "$.kernelArguments", {"shouldExist", "shouldNotExist"}
        )
        c.strings(args, "shouldExist", "$.kernelArguments")
        c.strings(args, "shouldNotExist", "$.kernelArguments")
    return c.problems


def _storage(c: _Checker, value: Any) -> None:
    known = {"disks", "raid", "filesystems", "files", "directories", "links", "luks"}
    storage = c.mapping(value, "$.storage", known)
    seen: set[str] = set()
    file_keys = {"path", "overwrite", "contents", "append", "mode", "user", "group"}
    for where, item in c.items(storage, "files", "$.storage"):
        f = c.mapping(item, where, file_keys)
        c.abs_path(f, where, seen)
        c.mode(f, where)
        c.owner(f, where)
        c.typed(f, "overwrite", where, bool)
        if "contents" in f:
            c.resource(f["contents"], f"{where}.contents")
        for app_where, app in c.items(f, "append", where):
            c.resource(app, app_where)
    for where, item in c.items(storage, "directories", "$.storage"):
        d = c.mapping(item, where, {"path", "overwrite", "mode", "user", "group"})
        c.abs_path(d, where, seen)
        c.mode(d, where)
        c.owner(d, where)
    for where, item in c.items(storage, "links", "$.storage"):
        link = c.mapping(item, where, {"path", "overwrite", "target", "hard", "user", "group"})
        c.abs_path(link, where, seen)
        if c.typed(link, "target", where, str) is None:
            c.bad(f"{where}.target", "required")
        c.typed(link, "hard", where, bool)
    for where, item in c.items(storage, "filesystems", "$.storage"):
        fs = c.mapping(
            item,
            where,
            {"device", "format", "path", "wipeFilesystem", "label", "uuid", "options",
             "mountOptions"},
        )  # fmt: skip
        if c.typed(fs, "device", where, str) is None:
            c.bad(f"{where}.device", "required")


def _systemd(c: _Checker, value: Any) -> None:
    systemd = c.mapping(value, "$.systemd", {"units"})
    names: set[str] = set()
    for where, item in c.items(systemd, "units", "$.systemd"):
        unit = c.mapping(item, where, {"name", "enabled", "mask", "contents", "dropins"})
        name = c.typed(unit, "name", where, str)
        if name is None:
            c.bad(f"{where}.name", "required")
        elif not name.endswith(UNIT_SUFFIXES) or not UNIT_NAME_RE.match(name):
            c.bad(f"{where}.name", f"{name!r} is not a unit name (name.service, .timer, ...)")
        elif name in names:
            c.bad(f"{where}.name", f"unit {name} is declared twice")
        else:
            names.add(name)
        c.typed(unit, "enabled", where, bool)
        c.typed(unit, "mask", where, bool)
        c.typed(unit, "contents", where, str)
        for d_where, dropin in c.items(unit, "dropins", where):
            d = c.mapping(dropin, d_where, {"name", "contents"})
            d_name = c.typed(d, "name", d_where, str)
            if d_name is None or not d_name.endswith(".conf"):
                c.bad(f"{d_where}.name", f"drop-in names end in .conf, got {d_name!r}")
            c.typed(d, "contents", d_where, str)


def _passwd(c: _Checker, value: Any) -> None:
    passwd = c.mapping(value, "$.passwd", {"users", "groups"})
    user_keys = {
        "name", "passwordHash", "sshAuthorizedKeys", "uid", "gecos", "homeDir", "noCreateHome",
        "primaryGroup", "groups", "noUserGroup", "noLogInit", "shell", "system", "shouldExist",
    }  # fmt: skip
    for where, item in c.items(passwd, "users", "$.passwd"):
        user = c.mapping(item, where, user_keys)
        if c.typed(user, "name", where, str) is None:
            c.bad(f"{where}.name", "required")
        c.strings(user, "sshAuthorizedKeys", where)
        c.strings(user, "groups", where)
        c.typed(user, "uid", where, int)
        c.typed(user, "passwordHash", where, str)
    for where, item in c.items(passwd, "groups", "$.passwd"):
        group = c.mapping(item, where, {"name", "gid", "passwordHash", "system", "shouldExist"})
        if c.typed(group, "name", where, str) is None:
            c.bad(f"{where}.name", "required")
        c.typed(group, "gid", where, int)
