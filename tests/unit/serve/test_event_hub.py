"""The event hub: subscribers see every event, the store gets them in batches, old ones go."""

from __future__ import annotations

from pathlib import Path

from racker.events import DhcpEvent, Event
from racker.serve import EventHub
from racker.store import Store


def test_flush_writes_batches_and_prunes_periodically(tmp_path: Path) -> None:
    seen: list[Event] = []
    with Store.open(tmp_path) as store:
        hub = EventHub(store)
        hub.KEEP_EVENTS, hub.PRUNE_EVERY = 5, 2
        hub.subscribers.append(seen.append)

        def broken(_event: Event) -> None:
            raise RuntimeError("a broken subscriber")

        hub.subscribers.append(broken)
        for flush in range(3):
            for i in range(4):
                hub.publish(DhcpEvent("ack", "m", 0.0, xid=flush * 4 + i))
            hub.flush()
        assert len(seen) == 12  # the broken subscriber did not stop the others
        # Flush 2 pruned to the newest 5 of 8; flush 3 added 4 more.
        assert [e["xid"] for e in store.events()] == [3, 4, 5, 6, 7, 8, 9, 10, 11]
