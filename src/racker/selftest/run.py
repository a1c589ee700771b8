"""The whole self-test: DHCP per firmware kind, TFTP per first stage, HTTP."""

from __future__ import annotations

from racker.selftest.dhcp import check_dhcp
from racker.selftest.http_check import check_http
from racker.selftest.report import Check
from racker.selftest.target import Target
from racker.selftest.tftp import check_tftp

SERVICES = ("dhcp", "tftp", "http")


def run_selftest(
    target: Target, services: tuple[str, ...] = SERVICES, timeout: float = 3.0
) -> list[Check]:
    """Every check of ``services``, in order; a failing check does not stop the others."""
    checks: list[Check] = []
    if "dhcp" in services:
        checks += check_dhcp(target, timeout)
    if "tftp" in services:
        checks += check_tftp(target, timeout)
    if "http" in services:
        checks += check_http(target, timeout)
    return checks
