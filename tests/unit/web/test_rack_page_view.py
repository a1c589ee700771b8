"""RackView: what the rack page shows, from events and store rows (pure, no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from racker.events import BmcEvent, DhcpEvent, HttpEvent, NodeStateEvent, PhoneHomeEvent
from racker.web.page.view import WARNINGS_KEPT, RackView, clean, summary, timeline_entry

PRIMARY, BMC, OTHER = "52:54:00:00:00:01", "52:54:00:00:01:01", "52:54:00:00:00:02"
TOKEN = "1700086400.AbCdEfGhIjKlMnOpQrStUv"  # noqa: S105 - a made-up token to look for


def nodes(count: int = 2) -> list[dict[str, Any]]:
    return [
        {
            "hostname": f"worker-00000{i}",
            "node_type": "worker",
            "primary_mac": f"52:54:00:00:00:{i:02x}",
            "bmc_mac": f"52:54:00:00:01:{i:02x}",
            "secondary_mac": None,
            "address": f"10.99.0.{64 + i}",
            "bmc_address": f"10.99.0.{128 + i}",
            "bmc_key": f"10.99.0.{128 + i}",
            "bmc_protocol": "auto",
            "management": False,
        }
        for i in range(1, count + 1)
    ]


def state(new: str, ts: float = 100.0, old: str = "", reason: str = "") -> dict[str, Any]:
    event = NodeStateEvent(
        "transition", PRIMARY, ts, node="worker-000001", old=old, new=new, reason=reason
    )
    return event.to_dict()


def test_rows_start_unknown_with_the_inventory_columns() -> None:
    view = RackView(nodes())
    row = view.rows[PRIMARY]
    assert row["state"] == "unknown"
    assert row["power"] == "unknown"  # racker has seen nothing: no BMC polling to guess
    assert row["address"] == "10.99.0.65"
    assert row["bmc_protocol"] == "auto"


@pytest.mark.parametrize(
    ("event", "power"),
    [
        (BmcEvent("command", PRIMARY, 5.0, action="power-on"), "on"),
        (BmcEvent("command", PRIMARY, 5.0, action="power-off"), "off"),
        (BmcEvent("command", PRIMARY, 5.0, action="power-cycle"), "on"),
        (BmcEvent("command", PRIMARY, 5.0, action="power-off", ok=False, error="x"), "unknown"),
        (BmcEvent("command", PRIMARY, 5.0, action="power-status"), "unknown"),
        (BmcEvent("command", PRIMARY, 5.0, action="bootdev-pxe"), "unknown"),
        (DhcpEvent("request", PRIMARY, 5.0, message="DISCOVER"), "on"),  # the node itself
        (DhcpEvent("request", BMC, 5.0, message="DISCOVER"), "unknown"),  # only its BMC
    ],
)
def test_power_is_the_last_known_from_events(event: Any, power: str) -> None:
    view = RackView(nodes())
    view.apply(event.to_dict())
    assert view.rows[PRIMARY]["power"] == power


def test_a_state_change_moves_the_row_and_marks_only_it_dirty() -> None:
    view = RackView(nodes())
    view.take_delta()
    view.apply(state("dhcp-seen", ts=123.0, old="power-cycled"))
    delta = view.take_delta()
    assert delta is not None
    assert [row["primary_mac"] for row in delta["nodes"]] == [PRIMARY]
    assert delta["nodes"][0]["state"] == "dhcp-seen"
    assert delta["nodes"][0]["since"] == 123.0
    assert delta["nodes"][0]["last_event"] == "state power-cycled → dhcp-seen"
    assert "hostname" not in delta["nodes"][0]  # a delta: only the columns that change
    assert view.take_delta() is None  # nothing changed since


def test_a_burst_of_events_is_one_row_in_one_delta() -> None:
    view = RackView(nodes(200))
    view.take_delta()
    for i in range(5000):
        view.apply(DhcpEvent("request", PRIMARY, float(i), message="DISCOVER").to_dict())
    delta = view.take_delta()
    assert delta is not None and len(delta["nodes"]) == 1
    assert view.counts["dhcp DISCOVER received"] == 5000


def test_store_states_update_rows_and_a_failed_node_warns_until_it_recovers() -> None:
    view = RackView(nodes())
    view.set_states(
        {
            PRIMARY: {
                "state": "failed",
                "since": 7.0,
                "reason": "no DHCP in 300 s",
                "data": {"role": "worker"},
            }
        }
    )
    assert view.rows[PRIMARY]["state"] == "failed"
    assert view.rows[PRIMARY]["role"] == "worker"
    failed = view.warnings_json()["failed"]
    assert [w["text"] for w in failed] == ["worker-000001 failed: no DHCP in 300 s"]
    view.set_states({PRIMARY: {"state": "pending", "since": 8.0}})
    assert view.warnings_json()["failed"] == []
    assert view.rows[OTHER]["state"] == "unknown"


def test_warnings_name_rogue_servers_declines_and_bmc_errors() -> None:
    view = RackView(nodes())
    rogue = {
        "source": "dhcp",
        "kind": "rogue-dhcp",
        "mac": None,
        "ts": 1.0,
        "server_ip": "10.99.0.254",
        "server_mac": "02:00:00:00:00:fe",
    }
    view.apply(rogue)
    view.apply({**rogue, "ts": 61.0})
    view.apply(DhcpEvent("request", OTHER, 2.0, message="DECLINE", address="10.99.0.66").to_dict())
    view.apply(
        BmcEvent(
            "command",
            PRIMARY,
            3.0,
            node="worker-000001",
            action="power-on",
            ok=False,
            error="10.99.0.129: no answer",
        ).to_dict()
    )
    warnings = view.warnings_json()
    assert warnings["rogue-dhcp"][0]["text"] == (
        "another DHCP server answers: 10.99.0.254 (02:00:00:00:00:fe)"
    )
    assert warnings["rogue-dhcp"][0]["count"] == 2
    assert "declined 10.99.0.66" in warnings["decline"][0]["text"]
    assert warnings["bmc-error"][0]["text"] == (
        "worker-000001: power-on failed: 10.99.0.129: no answer"
    )
    view.apply(BmcEvent("command", PRIMARY, 4.0, action="power-on").to_dict())
    assert view.warnings_json()["bmc-error"] == []  # the BMC answers again


def test_warnings_are_bounded() -> None:
    view = RackView(nodes())
    for i in range(3 * WARNINGS_KEPT):
        view.apply(
            {
                "source": "dhcp",
                "kind": "rogue-dhcp",
                "mac": None,
                "ts": float(i),
                "server_ip": f"10.0.{i // 256}.{i % 256}",
                "server_mac": "?",
            }
        )
    assert len(view.warnings_json()["rogue-dhcp"]) == WARNINGS_KEPT


def test_no_token_or_secret_reaches_the_page() -> None:
    url = f"http://10.99.0.1:8080/ignition?mac={PRIMARY}&token={TOKEN}"
    event = {
        "source": "phone-home",
        "kind": "failed",
        "mac": PRIMARY,
        "ts": 1.0,
        "message": f"could not fetch {url}",
        "password": "hunter2",
        "extra": {"token": TOKEN, "ignition_config": "{...}", "note": f"token={TOKEN}"},
    }
    cleaned = clean(event)
    assert TOKEN not in str(cleaned) and "hunter2" not in str(cleaned)
    assert "ignition_config" not in cleaned["extra"]
    assert TOKEN not in summary(event)
    view = RackView(nodes())
    view.apply(event)
    view.apply(state("failed", reason=f"installer said {url}"))
    assert TOKEN not in str(view.snapshot())


@pytest.mark.parametrize(
    "quoted",
    [
        f"TOKEN={TOKEN}",
        f"Token={TOKEN}",
        f"/ignition?mac=x&token%3D{TOKEN}",
        f'{{"token": "{TOKEN}"}}',
        f"token: {TOKEN}",
    ],
)
def test_a_token_quoted_in_any_form_is_blanked(quoted: str) -> None:
    event = PhoneHomeEvent("failed", PRIMARY, 1.0, message=f"installer said {quoted}").to_dict()
    assert TOKEN not in str(clean(event)) and TOKEN not in summary(event)
    view = RackView(nodes())
    view.apply(event)
    view.apply(state("failed", reason=quoted))
    assert TOKEN not in str(view.snapshot())


def test_a_timeline_shows_only_the_fields_events_are_known_to_have() -> None:
    # An event from the store with fields no racker event has (another racker's, or one that
    # gains a field later): the page shows none of them until they are named.
    event = {
        **HttpEvent("request", PRIMARY, 1.0, path="/ignition", status=200).to_dict(),
        "body": '{"ignition": {"version": "3.4.0"}, "passwd": {"users": []}}',
        "authorization": "Basic aGFja2VyOmh1bnRlcjI=",
        "extra": {"config": "ssh-ed25519 AAAA"},
    }
    shown = timeline_entry(event)
    assert set(shown) == {"source", "kind", "mac", "ts", "peer", "method", "path", "status",
                          "bytes", "duration", "summary"}  # fmt: skip
    assert shown["summary"] == "HTTP GET /ignition 200"


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (
            DhcpEvent(
                "offer", PRIMARY, 1.0, message="OFFER", direction="out", address="10.99.0.65"
            ),
            "DHCP → OFFER 10.99.0.65",
        ),
        (
            HttpEvent("request", PRIMARY, 1.0, path="/boot.ipxe", status=200),
            "HTTP GET /boot.ipxe 200",
        ),
        (PhoneHomeEvent("installed", PRIMARY, 1.0), "phone-home installed"),
        (BmcEvent("command", PRIMARY, 1.0, action="bootdev-pxe"), "BMC bootdev-pxe ok"),
    ],
)
def test_summaries(event: Any, text: str) -> None:
    assert summary(event.to_dict()) == text


def test_auto_bmc_protocol_shows_what_the_driver_found() -> None:
    view = RackView(nodes())
    view.set_protocols({"10.99.0.129": "redfish"})
    assert view.rows[PRIMARY]["bmc_found"] == "redfish"
    assert "bmc_found" not in view.rows[OTHER]


def test_a_reload_keeps_what_was_known_of_the_nodes_still_there() -> None:
    view = RackView(nodes())
    view.apply(state("installing"))
    view.set_nodes(nodes(1))
    assert view.rows[PRIMARY]["state"] == "installing"
    assert OTHER not in view.rows


def test_warnings_of_events_older_than_a_day_go_but_a_failed_node_s_stays() -> None:
    view = RackView(nodes())
    rogue = {
        "source": "dhcp",
        "kind": "rogue-dhcp",
        "mac": None,
        "server_ip": "10.99.0.2",
        "server_mac": "02:00:00:00:be:ef",
    }
    view.apply({**rogue, "ts": 100.0})
    view.apply({**rogue, "server_ip": "10.99.0.3", "ts": 5000.0})
    view.set_states({PRIMARY: {"state": "failed", "since": 50.0, "reason": "timeout"}})
    view.take_delta()
    view.expire(before=1000.0)
    warnings = view.warnings_json()
    assert [w["key"] for w in warnings["rogue-dhcp"]] == ["10.99.0.3 02:00:00:00:be:ef"]
    assert len(warnings["failed"]) == 1
    assert view.take_delta() == {"nodes": [], "warnings": warnings}
