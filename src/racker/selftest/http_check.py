"""The self-test's HTTP checks: ``GET /boot.ipxe`` (the exact script) and ``GET /healthz``."""

from __future__ import annotations

import urllib.error
import urllib.request

from racker.selftest.report import Check, CheckFailed, timed
from racker.selftest.target import Target
from racker.web.boot_script import boot_script


def check_http(target: Target, timeout: float = 3.0) -> list[Check]:
    base = target.http_url
    return [
        timed("http", "/boot.ipxe", lambda: _get(f"{base}/boot.ipxe", boot_script(base), timeout)),
        timed("http", "/healthz", lambda: _get(f"{base}/healthz", "ok\n", timeout)),
    ]


def _get(url: str, expected: str, timeout: float) -> str:
    # No proxy: racker is on this machine's PXE NIC; an http_proxy must not be asked.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        raise CheckFailed(f"HTTP {exc.code} from {url}") from None
    except urllib.error.URLError as exc:
        raise CheckFailed(f"{url}: {exc.reason}") from None
    text = body.decode("utf-8", "replace")
    if text != expected:
        raise CheckFailed(f"HTTP {status}, {len(body)} bytes, not what racker serves")
    return f"HTTP {status}, {len(body)} bytes"
