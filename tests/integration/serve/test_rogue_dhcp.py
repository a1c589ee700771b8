"""Rogue DHCP detection against a real rogue: dnsmasq on the rack's L2 segment.

The segment: racker serve's namespace (``pxe0``, the example's PXE MAC) <-veth-> a client
namespace whose bridge ``br0`` joins that veth and a second veth to a third namespace, where
dnsmasq answers as a stray DHCP server would (10.99.0.2, MAC ``ROGUE_MAC``). busybox udhcpc on
``br0`` with ``-B`` asks for broadcast replies, as PXE ROMs do, so dnsmasq's answers reach
every port, racker's among them (a passive watcher sees only broadcast or flooded replies).
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.netns import Link, Namespace, create_namespace, delete_namespace, sh, unique
from tests.support.serving import NODE_MAC, RACKER, Serve, prepare_rack, segment

pytestmark = [pytest.mark.root, pytest.mark.slow]

ROGUE_MAC = "02:00:00:00:be:ef"
ROGUE_IP = "10.99.0.2"
RACKER_MAC = "52:54:00:99:02:01"  # the example rack's pxe_interface
CONFIG = "dhcp:\n  unknown_clients: pool\n"  # racker answers the probe's random MAC too


@contextlib.contextmanager
def rogue_segment() -> Iterator[tuple[Link, Namespace]]:
    """racker's namespace, the client's (``br0``), and the rogue's (``rg1``); removed on exit."""
    with segment() as net:
        rogue = create_namespace(unique("rg"))
        try:
            cli = net.client.name
            sh("ip", "-n", cli, "link", "add", "br0", "type", "bridge", "stp_state", "0",
               "forward_delay", "0")  # fmt: skip
            sh("ip", "-n", cli, "link", "set", "br0", "address", NODE_MAC)
            sh("ip", "-n", cli, "link", "set", net.cli_if, "master", "br0")
            sh("ip", "-n", cli, "link", "add", "rg0", "type", "veth", "peer", "name", "rg1")
            sh("ip", "-n", cli, "link", "set", "rg1", "netns", rogue.name, "address", ROGUE_MAC)
            sh("ip", "-n", cli, "link", "set", "rg0", "master", "br0")
            for name in ("rg0", "br0"):
                sh("ip", "-n", cli, "link", "set", name, "up")
            sh("ip", "-n", rogue.name, "addr", "add", f"{ROGUE_IP}/24", "dev", "rg1")
            sh("ip", "-n", rogue.name, "link", "set", "rg1", "up")
            yield net, rogue
        finally:
            delete_namespace(rogue.name)


@contextlib.contextmanager
def dnsmasq(rogue: Namespace, tmp: Path) -> Iterator[None]:
    log = tmp / "dnsmasq.log"
    with log.open("wb") as out:
        proc = rogue.popen(
            [
                "dnsmasq",
                "--no-daemon",
                "--conf-file=/dev/null",
                "--port=0",  # no DNS
                "--dhcp-range=10.99.0.200,10.99.0.250,255.255.255.0,1h",
                "--interface=rg1",
                "--bind-interfaces",
                "--leasefile-ro",
                f"--pid-file={tmp / 'dnsmasq.pid'}",
                "--user=root",
                "--log-dhcp",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 10
        while "started, version" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


def broadcast_dhcp(net: Link, rack: Path) -> str:
    """One DHCP exchange from br0 asking for broadcast replies; udhcpc's output."""
    return net.client.run(
        "busybox", "udhcpc", "-i", "br0", "-B", "-n", "-q", "-f", "-t", "3", "-T", "1",
        "-s", str(rack / "udhcpc.sh"), check=False,
    ).stdout  # fmt: skip


def wait_for(path: Path, text: str, seconds: float = 15) -> str:
    deadline = time.monotonic() + seconds
    while text not in (content := path.read_text()):
        assert time.monotonic() < deadline, f"{text!r} not in:\n{content[-3000:]}"
        time.sleep(0.1)
    return content


def metric(net: Link, name: str) -> float:
    text = net.server.run("curl", "-sS", "-f", "http://10.99.0.1:8080/metrics").stdout
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    assert found, text
    return float(found.group(1))


def test_serve_warns_about_dnsmasq_answering_and_not_about_itself(tmp_path: Path) -> None:
    rack = prepare_rack(tmp_path)
    (rack / "racker.yaml").write_text(CONFIG)
    state = ["--oem-dir", str(rack / "oem"), "--state-dir", str(rack / "state")]
    with rogue_segment() as (net, rogue):
        serve = Serve(net, rack, rack / "racker.yaml")
        try:
            # Only racker answers: its own OFFER and ACK are not rogue.
            assert "serverid=10.99.0.1" in broadcast_dhcp(net, rack)
            assert metric(net, "racker_dhcp_rogue_replies_total") == 0
            assert metric(net, "racker_dhcp_rogue_servers") == 0
            assert "rogue DHCP" not in serve.log.read_text()
            with dnsmasq(rogue, tmp_path):
                for _ in range(3):  # each DISCOVER: dnsmasq's OFFER, broadcast
                    broadcast_dhcp(net, rack)
                log = wait_for(serve.log, "rogue DHCP server on pxe0")
            assert metric(net, "racker_dhcp_rogue_servers") == 1
            assert metric(net, "racker_dhcp_rogue_replies_total") >= 3
        finally:
            assert serve.stop() == 0
        warnings = [line for line in log.splitlines() if "rogue DHCP server" in line]
        assert len(warnings) == 1, warnings  # at most once a minute per server
        assert f"{ROGUE_IP} (MAC {ROGUE_MAC}) answered with OFFER of 10.99.0.2" in warnings[0]
        assert "WARNING" in warnings[0]
        rows = (
            sqlite3.connect(rack / "state" / "racker.db")
            .execute("SELECT source, data FROM events WHERE kind = 'rogue-dhcp'")
            .fetchall()
        )
        assert len(rows) == 1, rows
        event = json.loads(rows[0][1])
        assert (rows[0][0], event["server_ip"], event["server_mac"], event["interface"]) == (
            "dhcp",
            ROGUE_IP,
            ROGUE_MAC,
            "pxe0",
        )
        assert event["message_type"] == "OFFER"
        # racker status (another process, from the store) names the server.
        status = net.server.run(RACKER, "status", "--driver", "fake", *state, check=False)
        assert status.returncode == 0, status.stderr
        assert f"another DHCP server answers on pxe0: {ROGUE_IP} (MAC {ROGUE_MAC})" in (
            " ".join(status.stdout.split())
        ), status.stdout
        as_json = net.server.run(RACKER, "status", "--json", "--driver", "fake", *state)
        rows_json = json.loads(as_json.stdout)
        assert rows_json[0]["rogue_dhcp_servers"][0]["server_ip"] == ROGUE_IP


def test_the_probe_names_dnsmasq_and_exits_1_then_only_racker_and_exits_0(
    tmp_path: Path,
) -> None:
    rack = prepare_rack(tmp_path)
    (rack / "racker.yaml").write_text(CONFIG)
    probe = [
        RACKER, "factory", "check", "--probe", "--probe-seconds", "5", "--interface", "br0",
        "--oem-dir", str(rack / "oem"), "--config", str(rack / "racker.yaml"),
    ]  # fmt: skip
    with rogue_segment() as (net, rogue):
        serve = Serve(net, rack, rack / "racker.yaml")
        try:
            with dnsmasq(rogue, tmp_path):
                found = net.client.run(*probe, check=False)
                as_json = net.client.run(*probe, "--json", check=False)
            alone = net.client.run(*probe, check=False)
        finally:
            assert serve.stop() == 0
    assert found.returncode == 1, found.stdout + found.stderr
    assert f"another DHCP server answers: {ROGUE_IP} (MAC {ROGUE_MAC})" in found.stdout
    assert f"{ROGUE_IP} ({ROGUE_MAC}): OFFER of 10.99.0.2" in found.stdout
    assert "— NOT racker" in found.stdout
    assert f"10.99.0.1 ({RACKER_MAC}): OFFER of 10.99.0.19" in found.stdout  # the pool
    data = json.loads(as_json.stdout)
    assert as_json.returncode == 1
    answers = {a["server_ip"]: a for a in data["dhcp_probe"]["answers"]}
    assert answers[ROGUE_IP]["racker"] is False
    assert answers["10.99.0.1"]["racker"] is True
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert "only racker answered" in alone.stdout
    assert f"10.99.0.1 ({RACKER_MAC}): OFFER of 10.99.0.19" in alone.stdout
    assert ROGUE_IP not in alone.stdout
