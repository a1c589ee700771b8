"""Groups and their selection: which profile a machine gets (layer 1: pure).

matchbox's data model: a group has selectors (all must equal the machine's attributes), a
profile and metadata; the most specific matching group wins; a group without selectors is a
default. Specificity is the tuple ``(priority, identity selectors, other selectors)``, compared
left to right: an explicit ``priority`` first, then selectors that name one machine (mac, uuid,
serial, hostname) outrank any number of class selectors (node_type, role, os, inventory,
labels). Two groups with equal specificity that could both match one machine (no shared
selector key with different values) are refused at load time, so selection never depends on
file order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from racker.errors import RackerError
from racker.profiles.context import NodeFacts, RenderContext

if TYPE_CHECKING:  # catalog imports this module
    from racker.profiles.catalog import Profile

IDENTITY_KEYS = ("mac", "uuid", "serial", "hostname")
CLASS_KEYS = ("node_type", "role", "os", "inventory")
# Allowed values of the selectors that are not free text.
CHOICES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"os": ("installed", "not-installed"), "inventory": ("known", "unknown")}
)


class NoMatch(RackerError):
    """No group matches the machine (or its profile cannot render what was asked)."""

    exit_code = 3


@dataclass(frozen=True)
class Group:
    id: str
    profile: str
    selectors: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    metadata: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    priority: int = 0
    source: str = "<built-in>"
    line: int = 1
    description: str = ""

    @property
    def specificity(self) -> tuple[int, int, int]:
        identity = sum(1 for k in self.selectors if k in IDENTITY_KEYS)
        return (self.priority, identity, len(self.selectors) - identity)

    def describe(self) -> str:
        if not self.selectors:
            return "no selectors (default)"
        return ", ".join(f"{k}={v}" for k, v in sorted(self.selectors.items()))


@dataclass(frozen=True)
class Match:
    group: Group
    profile: Profile
    why: list[str]


def attribute(key: str, facts: NodeFacts, ctx: RenderContext) -> tuple[str | None, ...]:
    """The machine's value(s) for selector ``key`` (a MAC selector matches any of its NICs)."""
    node = ctx.node
    if key == "mac":
        macs = {facts.mac} if facts.mac else set()
        if node is not None:
            macs.update(node.macs)
        return tuple(sorted(macs))
    if key == "uuid":
        return (facts.uuid.lower() if facts.uuid else None,)
    if key == "serial":
        return (facts.serial,)
    if key == "hostname":
        return (node.hostname if node is not None else facts.hostname,)
    if key == "node_type":
        return (node.node_type if node is not None else None,)
    if key == "role":
        return (ctx.role,)
    if key == "os":
        return ("installed" if ctx.installed else "not-installed",)
    if key == "inventory":
        return ("known" if node is not None else "unknown",)
    return (ctx.labels.get(key),)


def matches(group: Group, facts: NodeFacts, ctx: RenderContext) -> list[str] | None:
    """Reasons the group matches (one per selector), or None when one selector fails."""
    reasons = []
    for key, want in sorted(group.selectors.items()):
        have = attribute(key, facts, ctx)
        if want not in have:
            return None
        reasons.append(f"{key}={want}")
    return reasons


def _rank_key(group: Group) -> tuple[tuple[int, ...], str]:
    # Most specific first; ties cannot both match (refused at load), the id is a last resort.
    return tuple(-x for x in group.specificity), group.id


def rank(groups: tuple[Group, ...]) -> tuple[Group, ...]:
    """The groups in the order selection tries them (done once per catalog)."""
    return tuple(sorted(groups, key=_rank_key))


def select_group(ranked: tuple[Group, ...], facts: NodeFacts, ctx: RenderContext) -> Group:
    """The most specific matching group of ``rank(groups)``: the first that matches.

    The render path's selection: no reasons built (``explain_selection`` gives those, for
    ``racker render``), and a test keeps the two choosing the same group.
    """
    have: dict[str, tuple[str | None, ...]] = {}  # the machine's attributes, each built once
    for group in ranked:
        for key, want in group.selectors.items():
            values = have.get(key)
            if values is None:
                values = have[key] = attribute(key, facts, ctx)
            if want not in values:
                break
        else:
            return group
    raise _no_match(facts)


def _no_match(facts: NodeFacts) -> NoMatch:
    return NoMatch(
        f"no group matches {facts.mac or 'this machine'}",
        "add a group without selectors (a default) or one that selects this machine",
    )


def explain_selection(
    groups: tuple[Group, ...], facts: NodeFacts, ctx: RenderContext
) -> tuple[Group, list[str]]:
    found: list[tuple[Group, list[str]]] = []
    for group in groups:
        reasons = matches(group, facts, ctx)
        if reasons is not None:
            found.append((group, reasons))
    if not found:
        raise _no_match(facts)
    found.sort(key=lambda item: _rank_key(item[0]))
    best, reasons = found[0]
    why = [
        f"group {best.id!r} ({best.source}) matched: "
        + (", ".join(reasons) if reasons else "no selectors (default group)")
    ]
    if best.priority:
        why.append(f"priority {best.priority}")
    for other, _ in found[1:]:
        why.append(f"also matched but less specific: {other.id!r} ({other.describe()})")
    return best, why


def could_both_match(a: Group, b: Group) -> bool:
    """True unless a shared selector key has different values in the two groups."""
    return all(a.selectors[k] == b.selectors[k] for k in a.selectors.keys() & b.selectors.keys())


def ambiguous_pairs(groups: tuple[Group, ...]) -> list[tuple[Group, Group]]:
    pairs = []
    for i, a in enumerate(groups):
        for b in groups[i + 1 :]:
            if a.specificity == b.specificity and could_both_match(a, b):
                pairs.append((a, b))
    return pairs
