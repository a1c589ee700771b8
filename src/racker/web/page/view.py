"""RackView: what the rack page shows, kept in memory and fed events (pure: no I/O, no clock).

Events arrive in their ``to_dict`` form, from the hub (this process's servers) and from the
store's event log (a ``racker bootstrap`` in another process writes its node-state changes
there). Every string that reaches the page passes ``clean``: tokens in URLs are blanked and
fields named like secrets are dropped, so the page can never show one.

Changed rows are remembered (``dirty``) so the stream sends only those, at most a few times a
second, however many events a burst brings.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable, Mapping
from typing import Any

from racker.web.redact import redact

# A row's columns that events and the store change (a delta carries only these).
CHANGING = ("primary_mac", "state", "since", "attempt", "reason", "role", "power", "power_ts",
            "last_event", "last_ts", "bmc_found")  # fmt: skip
# Warning entries kept per category; the oldest goes first.
WARNINGS_KEPT = 50
WARNING_KINDS = ("rogue-dhcp", "decline", "bmc-error", "failed")
AGING_WARNINGS = ("rogue-dhcp", "decline", "bmc-error")
WARNING_AGE = 86400.0  # seconds a warning of an event is shown
_SECRET_WORDS = ("token", "password", "secret", "ignition_config", "credential")
# The fields of an event (racker.events) a timeline shows: an allow-list, so that a field added
# to an event later, or written to the store by another racker, is not shown until named here.
TIMELINE_FIELDS = frozenset({
    "source", "kind", "mac", "ts", "message", "direction", "client_kind", "client_arch",
    "address", "boot_file", "reason", "vendor_class", "server_ip", "server_mac",
    "message_type", "interface", "offered", "replies", "peer", "file", "error", "bytes",
    "blksize", "windowsize", "resends", "method", "path", "status", "duration", "node",
    "action", "ok", "old", "new", "attempt", "left_out", "seconds", "limit", "xid",
})  # fmt: skip
# What ``redact`` (aiohttp's ``token=`` in a query) misses: other cases, a URL-encoded "=",
# and a JSON or "token: x" form, as an installer's phone-home message may quote one.
_TOKEN_FORMS = re.compile(r"""(token["']?\s*(?:=|%3d|:)\s*["']?)[^&\s'"\\,;}]+""", re.IGNORECASE)
FAILED_STATES = frozenset({"failed"})
PHONE_HOME_PATH = "/api/v1/events"
# A power action that succeeded tells the power state it left behind.
_POWER_AFTER = {"power-on": "on", "power-cycle": "on", "power-off": "off", "power-soft": "off"}


def redact_text(text: str) -> str:
    """``text`` with every token value it quotes blanked."""
    return _TOKEN_FORMS.sub(r"\1<redacted>", redact(text))


def clean(value: Any) -> Any:
    """``value`` with every token redacted and every secret-named field dropped."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            str(k): clean(v)
            for k, v in value.items()
            if not any(word in str(k).lower() for word in _SECRET_WORDS)
        }
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def summary(event: Mapping[str, Any]) -> str:
    """One short line for an event, as the page's "last event" column shows it."""
    source, kind = str(event.get("source", "")), str(event.get("kind", ""))
    if source == "dhcp" and event.get("message"):
        arrow = "←" if event.get("direction") == "in" else "→"
        text = f"DHCP {arrow} {event['message']}"
        if event.get("address"):
            text += f" {event['address']}"
    elif source == "tftp":
        text = f"TFTP {kind} {event.get('file', '')}"
        if event.get("error"):
            text += f" ({event['error']})"
    elif source == "http":
        text = f"HTTP {event.get('method', '')} {event.get('path', '')} {event.get('status', '')}"
    elif source == "bmc":
        text = f"BMC {event.get('action', kind)} {'ok' if event.get('ok', True) else 'failed'}"
    elif source == "bootstrap":
        text = f"state {event.get('old') or '-'} → {event.get('new', '')}"
    elif source == "phone-home":
        text = f"phone-home {kind} {event.get('message', '')}".rstrip()
    else:
        text = f"{source} {kind}"
    return redact_text(text.strip())


def timeline_entry(event: Mapping[str, Any]) -> dict[str, Any]:
    """What a timeline shows of ``event``: its allow-listed fields, cleaned, and its summary."""
    shown = {k: clean(v) for k, v in event.items() if k in TIMELINE_FIELDS}
    return {**shown, "summary": summary(event)}


def _older(ts: Any, than: Any) -> bool:
    return isinstance(ts, int | float) and isinstance(than, int | float) and ts < than


class RackView:
    """Rows by primary MAC, warnings by category, and counts of the events seen."""

    def __init__(self, nodes: Iterable[Mapping[str, Any]]) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self._primary: dict[str, str] = {}  # any of a node's MACs -> its primary MAC
        self.warnings: dict[str, collections.OrderedDict[str, dict[str, Any]]] = {
            kind: collections.OrderedDict() for kind in WARNING_KINDS
        }
        self.counts: collections.Counter[str] = collections.Counter()
        self.dirty: set[str] = set()
        self.warnings_changed = False
        self.set_nodes(nodes)

    def set_nodes(self, nodes: Iterable[Mapping[str, Any]]) -> None:
        """The inventory's nodes (at start, after a reload): static columns, state unknown."""
        old = self.rows
        self.rows, self._primary = {}, {}
        for node in nodes:
            mac = str(node["primary_mac"])
            row = {
                "state": "unknown",
                "since": None,
                "attempt": 0,
                "reason": "",
                "role": None,
                "power": "unknown",
                "power_ts": None,
                "last_event": None,
                "last_ts": None,
            }
            row.update(old.get(mac, {}))
            row.update(clean(dict(node)))
            self.rows[mac] = row
            for key in ("primary_mac", "bmc_mac", "secondary_mac"):
                if node.get(key):
                    self._primary[str(node[key])] = mac
        self.dirty = set(self.rows)

    # -- state from the store --------------------------------------------------------------

    def set_states(self, states: Mapping[str, Mapping[str, Any]]) -> None:
        """Provisioning states as the store has them ({mac: {state, since, attempt, ...}})."""
        for mac, row in self.rows.items():
            state = states.get(mac)
            fields = {
                "state": str(state["state"]) if state else "unknown",
                "since": state.get("since") if state else None,
                "attempt": state.get("attempt", 0) if state else 0,
                "reason": redact_text(str(state.get("reason") or "")) if state else "",
                "role": (state.get("data") or {}).get("role") if state else None,
            }
            if any(row.get(k) != v for k, v in fields.items()):
                row.update(fields)
                self.dirty.add(mac)
            self._failed(mac, row)

    def set_protocols(self, known: Mapping[str, str]) -> None:
        """What the auto power driver found for each BMC ({host[:port]: protocol})."""
        for mac, row in self.rows.items():
            found = known.get(str(row.get("bmc_key") or ""))
            if row.get("bmc_protocol") == "auto" and found and row.get("bmc_found") != found:
                row["bmc_found"] = found
                self.dirty.add(mac)

    # -- events ----------------------------------------------------------------------------

    def concerns(self, mac: str) -> bool:
        """Is ``mac`` one of the inventory's (a node's NIC or BMC)?"""
        return mac in self._primary

    def apply(self, event: Mapping[str, Any], count: bool = True) -> None:
        """Show ``event``; ``count``: add it to the counts (live events, not the store's)."""
        source, kind = event.get("source"), event.get("kind")
        if count:
            self._count(event)
        if kind == "rogue-dhcp":
            self._rogue(event)
            return
        if source == "dhcp" and (kind == "decline" or event.get("message") == "DECLINE"):
            self._warn(
                "decline",
                str(event.get("address") or event.get("mac")),
                event,
                f"{event.get('mac')} declined {event.get('address') or 'an address'}"
                + (f": {event['reason']}" if event.get("reason") else ""),
            )
        mac = self._primary.get(str(event.get("mac")))
        if mac is None:
            return
        row = self.rows[mac]
        ts = event.get("ts")
        if source == "bmc":
            self._bmc(mac, row, event)
        elif source == "bootstrap" and event.get("new"):
            row["state"], row["since"] = str(event["new"]), ts
            row["attempt"] = event.get("attempt", row["attempt"])
            row["reason"] = redact_text(str(event.get("reason") or ""))
            if event["new"] == "power-cycled":
                self._power(row, "on", ts)
            self._failed(mac, row)
        elif source in ("dhcp", "tftp", "http", "phone-home") and event.get("mac") != row.get(
            "bmc_mac"
        ):
            self._power(row, "on", ts)  # the node itself spoke: it is powered
        if source == "http" and event.get("path") == PHONE_HOME_PATH:
            pass  # the phone-home event itself (published first) says more than its POST
        elif not _older(ts, row["last_ts"]):  # the store's poll can lag the hub's events
            row["last_event"], row["last_ts"] = summary(event), ts
        self.dirty.add(mac)

    @staticmethod
    def _power(row: dict[str, Any], power: str, ts: Any) -> None:
        if not _older(ts, row["power_ts"]):
            row["power"], row["power_ts"] = power, ts

    def _count(self, event: Mapping[str, Any]) -> None:
        self.count(
            str(event.get("source")),
            str(event.get("kind")),
            str(event.get("message") or ""),
            str(event.get("direction") or "in"),
            event.get("bytes") or 0,
        )

    def count(self, source: str, kind: str, message: str, direction: str, size: Any) -> None:
        """Count an event (also one the page need not look at further: a stranger's DHCP)."""
        if source == "dhcp" and message:
            way = "received" if direction == "in" else "sent"
            self.counts[f"dhcp {message} {way}"] += 1
        elif source == "tftp":
            self.counts[f"tftp {kind}"] += 1
            self.counts["tftp bytes sent"] += int(size) if isinstance(size, int) else 0

    def _bmc(self, mac: str, row: dict[str, Any], event: Mapping[str, Any]) -> None:
        action, ts = str(event.get("action", "")), event.get("ts")
        if event.get("ok", True):
            if action in _POWER_AFTER:
                self._power(row, _POWER_AFTER[action], ts)
            self._drop_warning("bmc-error", mac)
            return
        self._warn(
            "bmc-error",
            mac,
            event,
            f"{row.get('hostname', mac)}: {action} failed: {event.get('error', '')}",
        )

    def _rogue(self, event: Mapping[str, Any]) -> None:
        ip, mac = event.get("server_ip", "?"), event.get("server_mac", "?")
        key = f"{ip} {mac}"
        seen = self.warnings["rogue-dhcp"].get(key)
        count = event.get("replies") or (seen or {}).get("count", 0) + 1  # RogueDhcpEvent's
        self._warn("rogue-dhcp", key, event, f"another DHCP server answers: {ip} ({mac})")
        self.warnings["rogue-dhcp"][key]["count"] = count

    def _failed(self, mac: str, row: Mapping[str, Any]) -> None:
        if row.get("state") in FAILED_STATES:
            text = f"{row.get('hostname', mac)} failed"
            if row.get("reason"):
                text += f": {row['reason']}"
            current = self.warnings["failed"].get(mac)
            if current is None or current["text"] != text:
                self._warn("failed", mac, {"ts": row.get("since")}, text)
        else:
            self._drop_warning("failed", mac)

    def _warn(self, kind: str, key: str, event: Mapping[str, Any], text: str) -> None:
        entries = self.warnings[kind]
        entries.pop(key, None)
        entries[key] = {"key": key, "ts": event.get("ts"), "text": redact_text(text)}
        while len(entries) > WARNINGS_KEPT:
            entries.popitem(last=False)
        self.warnings_changed = True

    def _drop_warning(self, kind: str, key: str) -> None:
        if self.warnings[kind].pop(key, None) is not None:
            self.warnings_changed = True

    def expire(self, before: float) -> None:
        """Drop the warnings of events older than ``before`` (a failed node's stays while it
        is failed): ``racker status`` too names the rogue servers of the last 24 hours."""
        for kind in AGING_WARNINGS:
            entries = self.warnings[kind]
            old = [k for k, w in entries.items() if _older(w.get("ts"), before)]
            for key in old:
                del entries[key]
            self.warnings_changed |= bool(old)

    # -- what the page gets ----------------------------------------------------------------

    def warnings_json(self) -> dict[str, list[dict[str, Any]]]:
        return {kind: list(entries.values()) for kind, entries in self.warnings.items()}

    def snapshot(self) -> dict[str, Any]:
        return {
            "nodes": list(self.rows.values()),
            "warnings": self.warnings_json(),
            "counts": dict(self.counts),
        }

    def take_delta(self) -> dict[str, Any] | None:
        """The rows changed since the last call, their columns that change (the others only
        change with the inventory, and a reload sends every browser a snapshot), and the
        warnings if they changed; or None."""
        if not self.dirty and not self.warnings_changed:
            return None
        rows = (self.rows[m] for m in self.dirty if m in self.rows)
        delta: dict[str, Any] = {"nodes": [{k: r.get(k) for k in CHANGING} for r in rows]}
        if self.warnings_changed:
            delta["warnings"] = self.warnings_json()
        self.dirty, self.warnings_changed = set(), False
        return delta
