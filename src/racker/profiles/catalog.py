"""The loaded profiles and groups, and rendering for one machine (layer 1: pure).

A profile is what a machine boots (kernel, initrds, args, or its own iPXE template) and the
Ignition config it gets; a group says which machines get which profile. ``Catalog`` is built by
``load_catalog`` (loading.py) and is immutable: the web server calls it from any request.
"""

from __future__ import annotations

import json
import posixpath
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import jinja2
import yaml

from racker.errors import Problem
from racker.profiles.context import NodeFacts, RenderContext, template_vars
from racker.profiles.groups import Group, Match, NoMatch, explain_selection, rank, select_group
from racker.profiles.ignition import check_ignition
from racker.profiles.rendering import TemplateError, Templates


def boot_script(
    group: str, profile: str, kernel: str, initrds: list[str], names: list[str], args: str
) -> str:
    """The iPXE script of a profile that gives kernel/initrd/args instead of its own template.

    initrd=NAME on the kernel line: the EFI stub finds the initrd by that name (RIG.md).
    Plain Python: a jinja2 template of the same text (kept in the tests as the reference,
    compared by a property test) was a measurable part of every render (docs/benchmarks.md).
    """
    initrd_args = "".join(f" initrd={name}" for name in names)
    lines = [
        "#!ipxe",
        f"# racker: group {group}, profile {profile}",
        f"kernel {kernel}{initrd_args} {args}",
        *(f"initrd {url}" for url in initrds),
        "boot",
    ]
    return "\n".join(lines) + "\n"


# Where a render keeps (match, facts, context) for the profile_ignition function; not a name
# templates use.
RENDERING = "_racker_rendering"

# Template variables that come from the request (NodeFacts) rather than from racker's own
# knowledge of the node; ``mac`` is not one of them: it is what a node's answer is cached by.
# hostname is the inventory's for a known node, the request's otherwise: counted, to be safe.
REQUEST_VARIABLES = frozenset({"uuid", "serial", "hostname", "platform", "buildarch", "query"})
REQUEST_SELECTORS = frozenset({"uuid", "serial", "hostname"})


@dataclass(frozen=True)
class Boot:
    kernel: jinja2.Template
    initrds: tuple[jinja2.Template, ...] = ()
    args: tuple[jinja2.Template, ...] = ()


@dataclass(frozen=True)
class Profile:
    id: str
    source: str
    boot: Boot | None = None
    ipxe: jinja2.Template | None = None
    ignition: jinja2.Template | None = None
    metadata: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""
    ipxe_name: str | None = None
    ignition_name: str | None = None


@dataclass(frozen=True)
class Rendered:
    text: str
    match: Match  # its ``why`` is empty: renders skip the reasons, ``Catalog.select`` gives them


class Catalog:
    """Groups and profiles, already checked; selects and renders for one machine."""

    def __init__(
        self, groups: tuple[Group, ...], profiles: Mapping[str, Profile], templates: Templates
    ) -> None:
        self.groups = groups
        self._ranked = rank(groups)
        self.profiles = MappingProxyType(dict(profiles))
        self._templates = templates
        templates.profile_ignition = self._profile_ignition
        # None when no iPXE answer reads anything of the request but its MAC; else why.
        self.ipxe_reads_request = self._what_ipxe_reads_of_the_request()

    @property
    def ipxe_per_node(self) -> bool:
        """True when a node's iPXE script depends on nothing of the request but its MAC."""
        return self.ipxe_reads_request is None

    def _what_ipxe_reads_of_the_request(self) -> str | None:
        """Why an iPXE answer may depend on the request beyond its MAC, or None if it cannot.

        When it cannot, a node's script is the same whatever else iPXE sends (uuid, serial,
        platform...): the web server caches it per node and renders inventory nodes ahead of
        their requests. Decided from the groups' selectors and what the iPXE templates read.
        """
        for group in self.groups:
            keys = sorted(REQUEST_SELECTORS & set(group.selectors))
            if keys:
                return f"group {group.id!r} ({group.source}) selects by {', '.join(keys)}"
        for profile in self.profiles.values():
            if profile.ipxe is not None:
                templates: tuple[jinja2.Template, ...] = (profile.ipxe,)
                what = f"the iPXE template of profile {profile.id!r}"
            elif profile.boot is not None:
                boot = profile.boot
                templates = (boot.kernel, *boot.initrds, *boot.args)
                what = f"the boot section of profile {profile.id!r}"
            else:
                continue
            for template in templates:
                names = self._templates.variables_read(template)
                if names is None:
                    return f"{what} includes a template named by a variable"
                # A helper renders another template by name: what that reads is unknown.
                read = sorted(names & (REQUEST_VARIABLES | self._templates.helper_names))
                if read:
                    return f"{what} ({profile.source}) uses {', '.join(read)}"
        return None

    def select(self, facts: NodeFacts, ctx: RenderContext) -> Match:
        """The matching group and profile, with the reasons (``racker render`` shows them)."""
        group, why = explain_selection(self.groups, facts, ctx)
        profile = self.profiles[group.profile]
        why.append(f"profile {profile.id!r} ({profile.source})")
        return Match(group=group, profile=profile, why=why)

    def _pick(self, facts: NodeFacts, ctx: RenderContext) -> Match:
        """``select`` without the reasons: what every render (each /ipxe request) uses."""
        group = select_group(self._ranked, facts, ctx)
        return Match(group=group, profile=self.profiles[group.profile], why=[])

    def variables(self, match: Match, facts: NodeFacts, ctx: RenderContext) -> dict[str, Any]:
        variables = template_vars(facts, ctx)
        variables["group"] = match.group.id
        variables["profile"] = match.profile.id
        variables["metadata"] = {**match.profile.metadata, **match.group.metadata}

        variables[RENDERING] = (match, facts, ctx)  # for profile_ignition
        return variables

    def _profile_ignition(self, variables: Mapping[str, Any], name: str) -> dict[str, Any]:
        """The template function: profile ``name``'s Ignition for the machine being rendered."""
        match, facts, ctx = variables[RENDERING]
        other = self.profiles.get(name)
        if other is None:
            raise KeyError(f"profile_ignition: no profile {name!r}")
        return self._ignition(Match(match.group, other, match.why), facts, ctx)

    def render_ipxe(self, facts: NodeFacts, ctx: RenderContext) -> Rendered:
        match = self._pick(facts, ctx)
        return Rendered(self._ipxe(match, facts, ctx), match)

    def _ipxe(self, match: Match, facts: NodeFacts, ctx: RenderContext) -> str:
        profile: Profile = match.profile
        variables = self.variables(match, facts, ctx)
        t = self._templates
        if profile.ipxe is not None:
            return t.render(profile.ipxe, variables, f"iPXE template of profile {profile.id}")
        if profile.boot is None:
            raise NoMatch(f"profile {profile.id!r} has no boot section and no ipxe template")
        what = f"boot section of profile {profile.id}"
        boot = profile.boot
        pieces = t.render_all((boot.kernel, *boot.initrds, *boot.args), variables, what)
        kernel, *rest = (piece.strip() for piece in pieces)
        initrds, args = rest[: len(boot.initrds)], rest[len(boot.initrds) :]
        names = [posixpath.basename(urllib.parse.urlsplit(u).path) for u in initrds]
        arguments = " ".join(a for a in args if a)
        return boot_script(match.group.id, profile.id, kernel, initrds, names, arguments)

    def render_ignition(self, facts: NodeFacts, ctx: RenderContext) -> dict[str, Any]:
        return self._ignition(self._pick(facts, ctx), facts, ctx)

    def _ignition(self, match: Match, facts: NodeFacts, ctx: RenderContext) -> dict[str, Any]:
        profile: Profile = match.profile
        if profile.ignition is None:
            raise NoMatch(
                f"profile {profile.id!r} (group {match.group.id!r}) has no Ignition config",
                "this machine is not meant to fetch one; see `racker render MAC`",
            )
        variables = self.variables(match, facts, ctx)
        what = f"Ignition template of profile {profile.id}"
        text = self._templates.render(profile.ignition, variables, what)
        where = profile.ignition.filename or profile.source
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" at line {mark.line + 1} of the rendered text" if mark else ""
            raise TemplateError(
                Problem(
                    where,
                    None,
                    f"{what} did not render to valid YAML/JSON{line}: {exc}",
                    "insert strings with `| tojson` so quotes and colons stay valid",
                )
            ) from None
        problems = check_ignition(config)
        if problems:
            raise TemplateError(
                Problem(
                    where,
                    None,
                    f"{what} renders an invalid Ignition config: " + "; ".join(problems[:5]),
                    "see https://coreos.github.io/ignition/configuration-v3_3/",
                )
            )
        if not isinstance(config, dict):  # check_ignition reports a non-object; be explicit
            raise TypeError("Ignition config is not an object")
        return config

    def render_match(
        self, match: Match, facts: NodeFacts, ctx: RenderContext
    ) -> tuple[str, dict[str, Any] | None]:
        """iPXE text and Ignition (None if the profile has none) for an explicit match."""
        ipxe = self._ipxe(match, facts, ctx)
        ignition = self._ignition(match, facts, ctx) if match.profile.ignition else None
        return ipxe, ignition

    def render_metadata(self, facts: NodeFacts, ctx: RenderContext) -> dict[str, Any]:
        match = self._pick(facts, ctx)
        variables = template_vars(facts, ctx)
        data: dict[str, Any] = {
            "group": match.group.id,
            "profile": match.profile.id,
            "mac": facts.mac,
            "hostname": variables["hostname"],
            "node_type": variables["node_type"],
            "role": ctx.role,
            "address": ctx.address,
            "installed": ctx.installed,
        }
        data.update(match.profile.metadata)
        data.update(match.group.metadata)
        return json.loads(json.dumps(data, default=str))  # type: ignore[no-any-return]
