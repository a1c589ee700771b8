"""The release index and which release is an update or an upgrade (layer 1: pure).

The index is a JSON document at ``updates.url``::

    {"releases": [
      {"version": "0.2.0", "state_schema": 2, "notes": ["..."],
       "bundles": {"amd64": {"url": "racker-0.2.0-linux-amd64.tar.gz",
                             "sha256": "<64 hex>", "signature": "<url of a .sig>"}}}]}

Bundle URLs may be relative to the index URL. Versions are ``MAJOR.MINOR.PATCH``. An *update*
keeps MAJOR.MINOR (compatible: same configuration, same state schema); an *upgrade* is the
newest release of all, which may change either — ``describe_upgrade`` says what changes.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass, field

from racker.errors import RackerError

_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ReleaseError(RackerError):
    """The release index, a download or an installation step is wrong; nothing was changed."""

    exit_code = 1


def parse_version(text: str, where: str = "version") -> tuple[int, int, int]:
    match = _VERSION.match(text.strip())
    if match is None:
        raise ReleaseError(f"{where}: {text!r} is not a version MAJOR.MINOR.PATCH")
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


@dataclass(frozen=True)
class BundleRef:
    url: str  # absolute (resolved against the index URL)
    sha256: str
    signature: str | None = None


@dataclass(frozen=True)
class Release:
    version: str
    state_schema: int
    bundles: dict[str, BundleRef]
    notes: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[int, int, int]:
        return parse_version(self.version)


@dataclass(frozen=True)
class ReleaseIndex:
    source: str
    releases: tuple[Release, ...] = field(default_factory=tuple)


def parse_index(text: str, source: str) -> ReleaseIndex:
    """Parse the index fetched from ``source`` (its URL); every problem names the entry."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ReleaseError(
            f"{source}: not valid JSON ({exc})", "is updates.url the release index?"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("releases"), list):
        raise ReleaseError(f"{source}: expected an object with a 'releases' list")
    releases = []
    seen: set[str] = set()
    for i, entry in enumerate(data["releases"]):
        where = f"{source}: releases[{i}]"
        if not isinstance(entry, dict):
            raise ReleaseError(f"{where}: expected an object")
        version = str(entry.get("version", ""))
        parse_version(version, f"{where}.version")
        if version in seen:
            raise ReleaseError(f"{where}: version {version} is listed twice")
        seen.add(version)
        schema = entry.get("state_schema")
        if not isinstance(schema, int) or isinstance(schema, bool) or schema < 0:
            raise ReleaseError(f"{where}.state_schema: expected a whole number")
        bundles = entry.get("bundles")
        if not isinstance(bundles, dict) or not bundles:
            raise ReleaseError(f"{where}.bundles: expected an object of arch: {{url, sha256}}")
        refs = {
            str(arch): _bundle_ref(ref, f"{where}.bundles.{arch}", source)
            for arch, ref in bundles.items()
        }
        notes = entry.get("notes", [])
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            raise ReleaseError(f"{where}.notes: expected a list of text lines")
        releases.append(Release(version, schema, refs, tuple(notes)))
    releases.sort(key=lambda r: r.key)
    return ReleaseIndex(source, tuple(releases))


def _bundle_ref(ref: object, where: str, source: str) -> BundleRef:
    if not isinstance(ref, dict) or not isinstance(ref.get("url"), str):
        raise ReleaseError(f"{where}: expected an object with url and sha256")
    sha = str(ref.get("sha256", "")).lower()
    if not _SHA256.match(sha):
        raise ReleaseError(f"{where}.sha256: expected 64 hexadecimal digits")
    signature = ref.get("signature")
    if signature is not None and not isinstance(signature, str):
        raise ReleaseError(f"{where}.signature: expected a URL")
    return BundleRef(
        urllib.parse.urljoin(source, ref["url"]),
        sha,
        urllib.parse.urljoin(source, signature) if signature else None,
    )


@dataclass(frozen=True)
class VersionCheck:
    installed: str
    update: Release | None  # newest newer release with the same MAJOR.MINOR
    upgrade: Release | None  # newest newer release, when it is not the update


def check_versions(index: ReleaseIndex, installed: str, arch: str) -> VersionCheck:
    """Which release `racker update` and `racker upgrade` would install (None: none newer)."""
    have = parse_version(installed, "installed version")
    newer = [r for r in index.releases if r.key > have and arch in r.bundles]
    compatible = [r for r in newer if r.key[:2] == have[:2]]
    update = compatible[-1] if compatible else None
    upgrade = newer[-1] if newer and newer[-1] is not update else None
    return VersionCheck(installed, update, upgrade)


def find_release(index: ReleaseIndex, version: str) -> Release | None:
    return next((r for r in index.releases if r.version == version), None)


def describe_upgrade(installed: str, installed_schema: int, release: Release) -> list[str]:
    """What `racker upgrade` tells the operator before it changes anything."""
    have = parse_version(installed, "installed version")
    lines = [f"racker {installed} -> {release.version}"]
    if release.key[:2] != have[:2]:
        lines.append(
            f"  incompatible: {have[0]}.{have[1]} -> {release.key[0]}.{release.key[1]}; "
            "check racker.yaml against the new docs/config.md"
        )
    if release.state_schema > installed_schema:
        lines.append(
            f"  state database schema {installed_schema} -> {release.state_schema}: migrated on "
            "the first start; a copy of the old database is kept for rollback"
        )
    elif release.state_schema < installed_schema:
        lines.append(
            f"  state database schema {installed_schema} -> {release.state_schema}: "
            "this release cannot read the current state database"
        )
    lines.extend(f"  - {note}" for note in release.notes)
    return lines
