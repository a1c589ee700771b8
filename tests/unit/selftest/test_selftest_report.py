"""The self-test's report: ✓/✗ per check with its time, a summary, JSON; exit status."""

from __future__ import annotations

from racker.selftest.report import Check, CheckFailed, as_json, as_text, passed, timed


def test_timed_turns_failures_into_failed_checks() -> None:
    def broken() -> str:
        raise CheckFailed("no answer to the bios DISCOVER within 3 s")

    def refused() -> str:
        raise ConnectionRefusedError(111, "Connection refused")

    ok = timed("http", "/healthz", lambda: "HTTP 200")
    bad = timed("dhcp", "bios", broken)
    oserror = timed("tftp", "ipxe.efi", refused)
    assert (ok.ok, ok.detail) == (True, "HTTP 200")
    assert (bad.ok, bad.detail) == (False, "no answer to the bios DISCOVER within 3 s")
    assert not oserror.ok and "refused" in oserror.detail
    assert ok.seconds >= 0


def test_text_report() -> None:
    checks = [
        Check("dhcp", "bios", True, 0.0031, "OFFER+ACK 192.0.2.1"),
        Check("tftp", "undionly.kpxe", False, 1.0, "TFTP: timed out"),
    ]
    assert as_text(checks) == [
        "✓ dhcp bios               3.1 ms  OFFER+ACK 192.0.2.1",
        "✗ tftp undionly.kpxe   1000.0 ms  TFTP: timed out",
        "selftest: 1 of 2 checks failed (1.00 s)",
    ]
    assert not passed(checks)
    assert as_json(checks) == {
        "ok": False,
        "checks": [
            {
                "service": "dhcp",
                "name": "bios",
                "ok": True,
                "seconds": 0.0031,
                "detail": "OFFER+ACK 192.0.2.1",
            },
            {
                "service": "tftp",
                "name": "undionly.kpxe",
                "ok": False,
                "seconds": 1.0,
                "detail": "TFTP: timed out",
            },
        ],
    }


def test_nothing_checked_is_no_pass() -> None:
    assert not passed([])
    assert passed([Check("http", "/healthz", True, 0.1, "")])


def test_the_self_test_macs_are_unicast_and_locally_administered() -> None:
    from racker.selftest.dhcp import random_laa_mac

    macs = {random_laa_mac() for _ in range(200)}
    assert len(macs) == 200
    assert all(len(m) == 6 and m[0] & 0x01 == 0 and m[0] & 0x02 for m in macs)
