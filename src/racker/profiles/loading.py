"""Reading a profile directory into a checked ``Catalog`` (layer 1; reads files at load only).

Layout (matchbox's): ``profiles/*.yaml``, ``groups/*.yaml``, ``templates/*``. An id is the file
name without ``.yaml``. Everything is rendered once with sample contexts consistent with each
group's selectors, so a template or selector mistake stops ``racker serve`` at start with its
file and line instead of failing when a node asks. All problems are reported together.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from racker.errors import ConfigError, Problem
from racker.model import parse_mac
from racker.profiles.catalog import Boot, Catalog, Profile
from racker.profiles.context import (
    NodeFacts,
    PublicNic,
    RenderContext,
    RenderSettings,
    sample_context,
    sample_node,
)
from racker.profiles.groups import (
    CHOICES,
    CLASS_KEYS,
    IDENTITY_KEYS,
    Group,
    Match,
    NoMatch,
    ambiguous_pairs,
)
from racker.profiles.rendering import TemplateError, Templates

PROFILE_KEYS = {"description", "boot", "ipxe", "ignition", "metadata"}
GROUP_KEYS = {"description", "profile", "selectors", "metadata", "priority"}


def builtin_directory() -> Path:
    return Path(str(importlib.resources.files("racker") / "data" / "profiles"))


def load_catalog(directory: Path | None, settings: RenderSettings) -> Catalog:
    """Load and check a profile directory (None: the built-in Flatcar profiles)."""
    root = directory if directory is not None else builtin_directory()
    problems: list[Problem] = []
    if not root.is_dir():
        raise ConfigError([Problem(str(root), None, "profile directory not found")])
    templates = Templates(root / "templates")
    profiles: dict[str, Profile] = {}
    broken: set[str] = set()  # profiles already reported: groups naming them add nothing
    for path in sorted((root / "profiles").glob("*.yaml")):
        profile = _load_profile(path, templates, problems)
        if profile is not None:
            profiles[profile.id] = profile
        else:
            broken.add(path.stem)
    groups: list[Group] = []
    for path in sorted((root / "groups").glob("*.yaml")):
        group = _load_group(path, set(profiles), broken, problems)
        if group is not None:
            groups.append(group)
    if not groups and not problems:
        problems.append(
            Problem(str(root / "groups"), None, "no groups", "add at least a default group")
        )
    for a, b in ambiguous_pairs(tuple(groups)):
        problems.append(
            Problem(
                b.source,
                b.line,
                f"group {b.id!r} ({b.describe()}) and group {a.id!r} ({a.source}: "
                f"{a.describe()}) are equally specific and can match the same machine",
                "add a selector to one of them, or give one a higher `priority`",
            )
        )
    if problems:
        raise ConfigError(problems)
    catalog = Catalog(tuple(groups), profiles, templates)
    _render_samples(catalog, settings, problems)
    if problems:
        raise ConfigError(problems)
    return catalog


def _compose(path: Path, problems: list[Problem]) -> yaml.MappingNode | None:
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        why = getattr(exc, "problem", None) or str(exc)
        problems.append(Problem(str(path), line, f"not valid YAML: {why}", "check indentation"))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(str(path), None, f"cannot read: {exc}"))
        return None
    if not isinstance(node, yaml.MappingNode):
        problems.append(Problem(str(path), 1, "expected a mapping of keys"))
        return None
    return node


def _fields(
    path: Path, node: yaml.MappingNode, known: set[str], problems: list[Problem]
) -> dict[str, tuple[Any, int, yaml.Node]]:
    """Top-level keys as (python value, line, yaml node); unknown keys are problems."""
    out: dict[str, tuple[Any, int, yaml.Node]] = {}
    for key_node, value_node in node.value:
        key = key_node.value
        line = key_node.start_mark.line + 1
        if key not in known:
            hint = f"known keys: {', '.join(sorted(known))}"
            problems.append(Problem(str(path), line, f"unknown key {key!r}", hint))
            continue
        value = yaml.SafeLoader("").construct_document(value_node)
        out[key] = (value, value_node.start_mark.line + 1, value_node)
    return out


def _load_profile(path: Path, templates: Templates, problems: list[Problem]) -> Profile | None:
    node = _compose(path, problems)
    if node is None:
        return None
    before = len(problems)
    fields = _fields(path, node, PROFILE_KEYS, problems)
    file = str(path)

    def text(key: str) -> str | None:
        if key not in fields:
            return None
        value, line, _ = fields[key]
        if not isinstance(value, str):
            problems.append(Problem(file, line, f"{key}: expected text"))
            return None
        return value

    def template_file(key: str) -> Any:
        name = text(key)
        if name is None:
            return None
        try:
            return templates.file(name, file, fields[key][1])
        except TemplateError as exc:
            problems.append(exc.problem)
            return None

    boot = _boot(path, fields.get("boot"), templates, problems)
    ipxe, ignition = template_file("ipxe"), template_file("ignition")
    metadata: Any = fields.get("metadata", ({}, 0, None))[0] or {}
    if not isinstance(metadata, dict):
        problems.append(Problem(file, fields["metadata"][1], "metadata: expected a mapping"))
    if "boot" not in fields and "ipxe" not in fields:
        problems.append(
            Problem(file, 1, "a profile needs `boot` (kernel, initrd, args) or an `ipxe` template")
        )
    if len(problems) > before:
        return None
    return Profile(
        id=path.stem,
        source=file,
        boot=boot,
        ipxe=ipxe,
        ignition=ignition,
        metadata=MappingProxyType(dict(metadata)),
        description=text("description") or "",
        ipxe_name=text("ipxe"),
        ignition_name=text("ignition"),
    )


def _boot(
    path: Path,
    field: tuple[Any, int, yaml.Node] | None,
    templates: Templates,
    problems: list[Problem],
) -> Boot | None:
    if field is None:
        return None
    file = str(path)
    _, line, node = field
    if not isinstance(node, yaml.MappingNode):
        problems.append(Problem(file, line, "boot: expected kernel, initrd and args"))
        return None
    parts: dict[str, list[Any]] = {"kernel": [], "initrd": [], "args": []}
    before = len(problems)
    for key_node, value_node in node.value:
        key = key_node.value
        if key not in parts:
            problems.append(
                Problem(file, key_node.start_mark.line + 1, f"boot.{key}: unknown key",
                        "known keys: kernel, initrd, args")
            )  # fmt: skip
            continue
        items = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for item in items:
            item_line = item.start_mark.line + 1
            if not isinstance(item, yaml.ScalarNode):
                problems.append(Problem(file, item_line, f"boot.{key}: expected text"))
                continue
            try:
                parts[key].append(templates.inline(str(item.value), file, item_line))
            except TemplateError as exc:
                problems.append(exc.problem)
    if len(problems) > before:
        return None
    if len(parts["kernel"]) != 1:
        problems.append(Problem(file, line, "boot.kernel: exactly one kernel URL is needed"))
        return None
    return Boot(parts["kernel"][0], tuple(parts["initrd"]), tuple(parts["args"]))


def _load_group(
    path: Path, profiles: set[str], broken: set[str], problems: list[Problem]
) -> Group | None:
    node = _compose(path, problems)
    if node is None:
        return None
    before = len(problems)
    fields = _fields(path, node, GROUP_KEYS, problems)
    file = str(path)
    profile, pline, _ = fields.get("profile", (None, 1, None))
    if not isinstance(profile, str):
        problems.append(Problem(file, pline, "profile: the id of a profile is required"))
    elif profile in broken:
        return None
    elif profile not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        problems.append(Problem(file, pline, f"profile {profile!r} not found", f"known: {known}"))
    priority, prline, _ = fields.get("priority", (0, 1, None))
    if not isinstance(priority, int) or isinstance(priority, bool):
        problems.append(Problem(file, prline, "priority: expected a whole number"))
    selectors: dict[str, str] = {}
    if "selectors" in fields:
        _, sline, snode = fields["selectors"]
        if not isinstance(snode, yaml.MappingNode):
            problems.append(Problem(file, sline, "selectors: expected a mapping"))
        else:
            for key_node, value_node in snode.value:
                value = _selector(file, key_node, value_node, problems)
                if value is not None:
                    selectors[key_node.value] = value
    metadata: Any = fields.get("metadata", ({}, 1, None))[0] or {}
    if not isinstance(metadata, dict):
        problems.append(Problem(file, fields["metadata"][1], "metadata: expected a mapping"))
    description = fields.get("description", ("", 1, None))[0]
    if len(problems) > before:
        return None
    return Group(
        id=path.stem,
        profile=str(profile),
        selectors=MappingProxyType(selectors),
        metadata=MappingProxyType(dict(metadata)),
        priority=priority,
        source=file,
        line=node.start_mark.line + 1,
        description=str(description or ""),
    )


def _selector(
    file: str, key_node: yaml.Node, value_node: yaml.Node, problems: list[Problem]
) -> str | None:
    key, line = str(key_node.value), value_node.start_mark.line + 1
    if not isinstance(value_node, yaml.ScalarNode):
        problems.append(Problem(file, line, f"selectors.{key}: expected a single value"))
        return None
    raw = str(value_node.value).strip()
    if key == "mac":
        mac = parse_mac(raw)
        if mac is None:
            hint = 'write it as "aa:bb:cc:dd:ee:ff" (quoted: YAML 1.1 reads some MACs as numbers)'
            problems.append(Problem(file, line, "selectors.mac: not a MAC address", hint, raw))
        return mac
    if key == "uuid":
        return raw.lower()
    if key in CHOICES and raw not in CHOICES[key]:
        allowed = ", ".join(CHOICES[key])
        problems.append(
            Problem(file, line, f"selectors.{key}: must be one of {allowed}", None, raw)
        )
        return None
    return raw


def _samples(group: Group, settings: RenderSettings) -> list[tuple[NodeFacts, RenderContext]]:
    """Contexts a machine matching ``group`` could present (with and without optional NICs)."""
    sel = group.selectors
    labels = {k: v for k, v in sel.items() if k not in (*IDENTITY_KEYS, *CLASS_KEYS)}
    facts = NodeFacts(
        mac=sel.get("mac", "52:54:00:00:00:11"),
        uuid=sel.get("uuid"),
        serial=sel.get("serial"),
        hostname=sel.get("hostname"),
        platform="efi",
        buildarch="x86_64",
    )
    kw: dict[str, Any] = {
        "role": sel.get("role", "worker"),
        "installed": sel.get("os") == "installed",
        "labels": labels,
    }
    if sel.get("inventory") == "unknown":
        return [(facts, sample_context(settings, None, **kw))]
    node = sample_node(facts.mac or "52:54:00:00:00:11", sel.get("node_type", "sample"))
    static = PublicNic("203.0.113.10", 24, "203.0.113.1", ("203.0.113.53",))
    with_public = replace(settings, public=MappingProxyType({node.primary_mac: static}))
    single_nic = replace(node, secondary_mac=None)
    return [
        (facts, sample_context(with_public, node, **kw)),
        (facts, sample_context(settings, node, **kw)),
        (replace(facts, platform="pcbios"), sample_context(settings, single_nic, **kw)),
    ]


def _render_samples(catalog: Catalog, settings: RenderSettings, problems: list[Problem]) -> None:
    """Render each group's profile with that group's samples, and unused profiles once."""
    used = {g.profile for g in catalog.groups}
    unused = [Group(id="(none)", profile=p, source=p) for p in catalog.profiles if p not in used]
    seen: set[str] = set()
    for group in (*catalog.groups, *unused):
        profile = catalog.profiles[group.profile]
        for facts, ctx in _samples(group, settings):
            match = Match(group=group, profile=profile, why=[])
            try:
                catalog.render_match(match, facts, ctx)
            except (TemplateError, NoMatch) as exc:
                problem = (
                    exc.problem
                    if isinstance(exc, TemplateError)
                    else Problem(profile.source, None, exc.message, exc.hint)
                )
                if str(problem) not in seen:
                    seen.add(str(problem))
                    problems.append(problem)
