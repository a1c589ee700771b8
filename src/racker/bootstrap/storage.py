"""What orchestration needs of the state store, as Protocols.

The orchestrator, ``follow_store`` and ``racker status`` see only these; the composition root
hands them the SQLite ``racker.store.Store``, tests may hand them anything with these methods.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from racker.events import Event
from racker.model import NodeState


class NodeStateStore(Protocol):
    """Durable provisioning state: a node's phase is written before anything acts on it."""

    def node_states(self) -> dict[str, NodeState]: ...

    def set_node_state(self, state: NodeState) -> None: ...

    def set_node_states(self, states: Iterable[NodeState], events: Iterable[Event] = ()) -> None:
        """States, then events, in one transaction."""

    def append_events(self, events: Iterable[Event]) -> None: ...


class EventLog(Protocol):
    """The stored event log another process (``racker serve``) appends to."""

    def last_event_id(self) -> int: ...

    def events_after(self, last_id: int, limit: int = 1000) -> list[tuple[int, dict[str, Any]]]: ...

    def events(self, mac: str | None = None, limit: int = 100) -> list[dict[str, Any]]: ...
