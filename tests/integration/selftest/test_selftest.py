"""`racker selftest` against a real `racker serve` in a namespace (root).

The management side (namespace ``net.server``) carries the example rack's PXE MAC, as in
tests/integration/serve; the self-test runs there, as it would on the management node.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.netns import Link
from tests.support.serving import RACKER, Serve, prepare_rack, segment

pytestmark = [pytest.mark.root, pytest.mark.slow]

KINDS = ["bios", "uefi", "ipxe", "uefi-http"]


@pytest.fixture
def rack(tmp_path: Path) -> Path:
    return prepare_rack(tmp_path)


@pytest.fixture
def net() -> Iterator[Link]:
    with segment() as made:
        yield made


def selftest(net: Link, rack: Path, *extra: str, state: str = "state") -> tuple[int, Any]:
    result = net.server.run(
        RACKER,
        "selftest",
        "--json",
        "--oem-dir",
        str(rack / "oem"),
        "--state-dir",
        str(rack / state),
        *extra,
        check=False,
    )
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def rows(rack: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(rack / "state" / "racker.db") as db:
        return db.execute(query).fetchall()


def test_selftest_passes_every_check_and_leaves_no_lease(net: Link, rack: Path) -> None:
    serve = Serve(net, rack)
    try:
        leases_before = rows(rack, "SELECT * FROM leases ORDER BY address")
        code, report = selftest(net, rack)
        # A second run: its proofs are new, so it is answered again (no replay refusal).
        again, _ = selftest(net, rack, "--only", "dhcp")
    finally:
        assert serve.stop() == 0
    checks = report["checks"]
    assert code == 0 and report["ok"], checks
    assert again == 0
    by = {(c["service"], c["name"]): c for c in checks}
    assert [c["name"] for c in checks if c["service"] == "dhcp"] == KINDS
    assert all(c["ok"] for c in checks), checks
    assert "undionly.kpxe" in by["dhcp", "bios"]["detail"]
    assert "no boot file" not in by["dhcp", "uefi"]["detail"]  # ipxe.efi (no boot.uefi_http)
    assert "http://10.99.0.1:8080/boot.ipxe" in by["dhcp", "ipxe"]["detail"]
    assert "http://10.99.0.1:8080/ipxe.efi" in by["dhcp", "uefi-http"]["detail"]
    assert {n for s, n in by if s == "tftp"} == {"undionly.kpxe", "ipxe.efi"}
    assert {n for s, n in by if s == "http"} == {"/boot.ipxe", "/healthz"}
    # No lease for the self-test's MACs: the lease table is as it was (and serve has stored
    # every change at stop).
    assert rows(rack, "SELECT * FROM leases ORDER BY address") == leases_before
    macs = {c["detail"].split(" from ")[1].split(",")[0] for c in checks if c["service"] == "dhcp"}
    assert len(macs) == 4
    held = [row for row in rows(rack, "SELECT mac, address FROM leases") if row[0] in macs]
    events = rows(rack, "SELECT mac, kind, json_extract(data, '$.address') FROM events")
    kinds = [(kind, address) for mac, kind, address in events if mac in macs]
    assert held == []
    # One event per answer, of kind selftest (not a node's: no discovery, no offer, no ack).
    assert sorted(kinds) == [("selftest", "192.0.2.1")] * 8, kinds
    log = serve.log.read_text()
    assert "Traceback" not in log


def test_a_forged_proof_is_served_as_any_client(net: Link, rack: Path) -> None:
    # A state directory with another key: the proofs are well-formed but not racker's.
    forged = rack / "forged"
    forged.mkdir()
    (forged / "http.key").write_text("ab" * 32 + "\n")
    (forged / "http.key").chmod(0o600)
    serve = Serve(net, rack)
    try:
        code, report = selftest(net, rack, "--only", "dhcp", "--timeout", "1", state="forged")
    finally:
        assert serve.stop() == 0
    assert code == 1 and not report["ok"]
    assert [c["ok"] for c in report["checks"]] == [False] * 4
    assert all("no answer" in c["detail"] for c in report["checks"]), report
    # racker saw them, as strangers (dhcp.unknown_clients: ignore), never as its self-test.
    events = rows(rack, "SELECT kind, json_extract(data, '$.reason') FROM events")
    assert ("selftest", "racker selftest: answered without a lease") not in events
    ignored = [e for e in events if e[1] == "unknown client ignored (dhcp.unknown_clients: ignore)"]
    assert len(ignored) >= 4, events
    assert rows(rack, "SELECT * FROM leases WHERE address = '192.0.2.1'") == []


def firewall(net: Link, rule: str) -> None:
    """One nft input rule in the server's namespace (gone with the namespace)."""
    net.server.run("nft", "add table inet selftest")
    net.server.run("nft", "add chain inet selftest input { type filter hook input priority 0 ; }")
    net.server.run("nft", f"add rule inet selftest input {rule}")


def test_tftp_blocked_fails_tftp_only(net: Link, rack: Path) -> None:
    serve = Serve(net, rack)
    try:
        firewall(net, "udp dport 69 drop")
        code, report = selftest(net, rack, "--timeout", "1")
    finally:
        assert serve.stop() == 0
    assert code == 1
    failed = {(c["service"], c["name"]) for c in report["checks"] if not c["ok"]}
    assert failed == {("tftp", "undionly.kpxe"), ("tftp", "ipxe.efi")}, report


def test_http_unreachable_fails_http_only(net: Link, rack: Path) -> None:
    serve = Serve(net, rack)
    try:
        firewall(net, "tcp dport 8080 reject with tcp reset")
        code, report = selftest(net, rack, "--timeout", "1")
    finally:
        assert serve.stop() == 0
    assert code == 1
    failed = {(c["service"], c["name"]) for c in report["checks"] if not c["ok"]}
    assert failed == {("http", "/boot.ipxe"), ("http", "/healthz")}, report


def test_a_first_stage_unlike_its_file_fails(net: Link, rack: Path) -> None:
    # The self-test sees another undionly.kpxe than the one racker serves (a bind mount in
    # its own mount namespace): as if the file had changed under a server that caches it.
    other = rack / "other.kpxe"
    other.write_bytes(b"not iPXE\n" * 100)
    serve = Serve(net, rack)
    try:
        script = (
            f"mount --bind {other} /usr/lib/ipxe/undionly.kpxe && exec {RACKER} selftest --json"
            f" --oem-dir {rack / 'oem'} --state-dir {rack / 'state'} --only tftp --timeout 1"
        )
        result = net.server.run("unshare", "--mount", "sh", "-c", script, check=False)
    finally:
        assert serve.stop() == 0
    assert result.returncode == 1, result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert not checks["undionly.kpxe"]["ok"]
    assert "differ" in checks["undionly.kpxe"]["detail"]
    assert checks["ipxe.efi"]["ok"]


def test_selftest_without_racker_serve_fails_every_check(net: Link, rack: Path) -> None:
    Serve(net, rack).stop()  # once, so that the key exists; then nothing answers
    code, report = selftest(net, rack, "--timeout", "0.5")
    assert code == 1
    assert not any(c["ok"] for c in report["checks"]), report


def test_after_a_reload_with_uefi_http_the_uefi_kind_expects_no_boot_file(
    net: Link, rack: Path
) -> None:
    config = rack / "racker.yaml"
    config.write_text("boot:\n  uefi_http: false\n")
    serve = Serve(net, rack, config=config)
    try:
        # SIGHUP: racker serve re-reads racker.yaml; the new DHCP core keeps the self-test gate.
        config.write_text("boot:\n  uefi_http: true\n")
        serve.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "reloaded:" not in serve.log.read_text():
            assert time.monotonic() < deadline, serve.log.read_text()
            time.sleep(0.1)
        code, report = selftest(net, rack, "--config", str(config), "--only", "dhcp")
    finally:
        assert serve.stop() == 0
    checks = {c["name"]: c for c in report["checks"]}
    assert code == 0, report
    assert "no boot file" in checks["uefi"]["detail"]
    assert "undionly.kpxe" in checks["bios"]["detail"]


def test_without_racker_serves_key_it_says_so(net: Link, rack: Path) -> None:
    (rack / "fresh").mkdir()
    result = net.server.run(
        RACKER,
        "selftest",
        "--oem-dir",
        str(rack / "oem"),
        "--state-dir",
        str(rack / "fresh"),
        check=False,
    )
    assert result.returncode == 4, result.stderr
    assert "racker serve has not run with this state directory" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (rack / "fresh" / "http.key").exists()  # the self-test never makes a key


def test_a_first_stage_missing_on_disk_fails_its_check(net: Link, rack: Path) -> None:
    config = rack / "racker.yaml"
    config.write_text("boot:\n  bios_loader: missing.kpxe\n")
    serve = Serve(net, rack, config=config)
    try:
        code, report = selftest(net, rack, "--config", str(config), "--timeout", "1")
    finally:
        assert serve.stop() == 0
    checks = {(c["service"], c["name"]): c for c in report["checks"]}
    assert code == 1
    assert not checks["tftp", "missing.kpxe"]["ok"]
    assert "not on disk" in checks["tftp", "missing.kpxe"]["detail"]
    assert "missing.kpxe" in checks["dhcp", "bios"]["detail"]  # offered, as configured
    assert checks["dhcp", "bios"]["ok"] and checks["tftp", "ipxe.efi"]["ok"]


SENDP = """
import sys, time
from pathlib import Path
from scapy.compat import raw
from scapy.layers.dhcp import BOOTP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.sendrecv import sendp
from racker.dhcp.boot import BootSettings
from racker.selftest.dhcp import KINDS, build_request
from racker.selftest.target import Target

key = bytes.fromhex(Path(sys.argv[1]).read_text().strip())
iface, mac = sys.argv[2], bytes.fromhex(sys.argv[3].replace(":", ""))
target = Target(iface, "10.99.0.1", 8080, key, BootSettings("10.99.0.1", 8080), {})
proven = build_request(target, KINDS[0], mac, 0x5E1F7E57, 1, {}, time.time())[BOOTP]
proven.giaddr, proven.hops = "0.0.0.0", 0  # as a client on the link sends it
frame = (
    Ether(src=sys.argv[3], dst="ff:ff:ff:ff:ff:ff")
    / IP(src="0.0.0.0", dst="255.255.255.255")
    / UDP(sport=68, dport=67)
    / proven
)
sendp(frame, iface=iface, verbose=False)
"""


def test_a_frame_sent_on_racker_s_own_nic_never_reaches_it(net: Link, rack: Path) -> None:
    # Why racker selftest speaks as a relay agent (racker.selftest.dhcp): racker's packet
    # socket (ETH_P_IP) is never handed the frames its own host sends on the PXE NIC. If this
    # starts to fail, the self-test could send on the link instead. The same frame from the
    # other end of the link is seen and answered as a self-test (the control).
    key = str(rack / "state" / "http.key")
    own, other = "02:00:5e:00:00:01", "02:00:5e:00:00:02"
    serve = Serve(net, rack)
    try:
        sent = net.server.run(sys.executable, "-c", SENDP, key, net.srv_if, own, check=False)
        assert sent.returncode == 0, sent.stderr
        control = net.client.run(sys.executable, "-c", SENDP, key, net.cli_if, other, check=False)
        assert control.returncode == 0, control.stderr
        time.sleep(1.5)  # not a timing assertion: time for an answer that must not come
    finally:
        assert serve.stop() == 0
    events = rows(rack, "SELECT mac, kind FROM events")
    assert [kind for mac, kind in events if mac == own] == []
    assert [kind for mac, kind in events if mac == other] == ["selftest"]
