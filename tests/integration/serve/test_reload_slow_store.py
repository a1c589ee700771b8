"""A SIGHUP reload on a slow disk holds nobody's answer (issue 22): a real `racker serve` in a
namespace whose store commits are each held 500 ms (RACKER_TEST_COMMIT_DELAY)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from racker.app.stack import COMMIT_DELAY_ENV
from tests.integration.serve.test_lease_durability import Relay, curl_seconds, wait_for
from tests.support.netns import Link, link
from tests.support.serving import Serve, prepare_rack

pytestmark = [pytest.mark.root, pytest.mark.slow]

STARTED, STORED = "reload: files read; updating the store", "reload: allocation table stored"
DONE = "reloaded:"


@pytest.fixture
def rack(tmp_path: Path) -> Path:
    made = prepare_rack(tmp_path)
    (made / "racker.yaml").write_text("dhcp:\n  unknown_clients: pool\n")
    return made


@pytest.fixture
def net() -> Iterator[Link]:
    with link(server_mac="52:54:00:99:02:01", client_mac="52:54:00:77:00:21") as made:
        yield made


def wait_for_line(log: Path, line: str, count: int, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while log.read_text().count(line) < count:
        assert time.monotonic() < deadline, f"no {line!r} in:\n{log.read_text()[-3000:]}"
        time.sleep(0.01)


def test_dhcp_tftp_and_http_are_answered_while_a_reload_waits_for_the_store(
    net: Link, rack: Path
) -> None:
    """Between the reload's 'updating the store' and 'allocation table stored' (a commit held
    500 ms), a DHCP client is offered an address, a TFTP file and an HTTP page are served: the
    answers came while the reload was waiting for the disk, not after it."""
    serve = Serve(net, rack, config=rack / "racker.yaml", env={COMMIT_DELAY_ENV: "0.5"})
    relay = Relay(net)
    try:
        replies = relay.listen()
        serve.proc.send_signal(signal.SIGHUP)
        wait_for_line(serve.log, STARTED, 1)
        relay.send("discover", "52:54:00:77:00:22", 7)
        tftp = curl_seconds(net, f"tftp://{net.server_ip}/undionly.kpxe")
        http = curl_seconds(net, f"http://{net.server_ip}:8080/metrics")
        wait_for(replies, 7)
        answered_while_held = STORED not in serve.log.read_text()
        wait_for_line(serve.log, DONE, 1)
        # The reload applied the files: a second one works too.
        serve.proc.send_signal(signal.SIGHUP)
        wait_for_line(serve.log, DONE, 2)
    finally:
        relay.close()
        assert serve.stop() == 0
    log = serve.log.read_text()
    print(f"TFTP {tftp:.3f} s, HTTP {http:.3f} s during the reload")
    assert 7 in replies, log[-3000:]
    assert answered_while_held, log[-3000:]
    assert "reload failed" not in log
