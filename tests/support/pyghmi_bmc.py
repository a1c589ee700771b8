"""pyghmi's fake BMC as a process: ``python -m tests.support.pyghmi_bmc --address A --state D``.

The password comes from the ``BMC_PASSWORD`` environment variable. Power and boot state live
in the state directory and every request is appended to ``calls.log`` in the same words as the
ipmi_sim chassis script ("get power", "set power 1", "set boot network", "set reset 1").

pyghmi 1.6's server always answers an RMCP+ Open Session Request with cipher suite 3 (SHA-1),
even when the client proposed RAKP-HMAC-SHA256; pyghmi's own client then derives keys with
SHA-256 and fails. Real BMCs refuse what they cannot do (status 0x11, "no cipher suite
match", IPMI v2.0 table 13-15) and the client falls back to SHA-1, so this one does too.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

from pyghmi.ipmi import bmc
from pyghmi.ipmi.private import serversession

RAKP_HMAC_SHA1 = 1
NO_CIPHER_SUITE_MATCH = 0x11


class Sha1OnlySession(serversession.ServerSession):
    def create_open_session_response(self, request: Any) -> Any:
        # Request bytes 12/20: authentication / integrity algorithm (IPMI v2.0 table 13-16).
        if request[12] & 0x3F != RAKP_HMAC_SHA1:
            self.clientsessionid = request[4:8]
            return bytearray([request[0], NO_CIPHER_SUITE_MATCH, 0, 0]) + request[4:8]
        return super().create_open_session_response(request)


class FileBmc(bmc.Bmc):  # type: ignore[misc]
    def __init__(self, state: Path, authdata: dict[str, str], port: int, address: str) -> None:
        super().__init__(authdata, port=port, address=address)
        self.state = state

    def _record(self, text: str) -> None:
        with (self.state / "calls.log").open("a") as log:
            log.write(text + "\n")

    def _read(self, name: str, default: str) -> str:
        try:
            return (self.state / name).read_text().strip() or default
        except FileNotFoundError:
            return default

    def _write(self, name: str, value: str) -> None:
        (self.state / name).write_text(value)

    def get_power_state(self) -> str:
        self._record("get power")
        return "on" if self._read("power", "0") == "1" else "off"

    def power_on(self) -> None:
        self._record("set power 1")
        self._write("power", "1")

    def power_off(self) -> None:
        self._record("set power 0")
        self._write("power", "0")

    def power_shutdown(self) -> None:
        self._record("set soft 1")
        self._write("power", "0")

    def power_cycle(self) -> None:
        self._record("set cycle 1")
        self._write("power", "1")

    def power_reset(self) -> None:
        self._record("set reset 1")

    def get_boot_device(self) -> str:
        self._record("get boot")
        return self._read("boot", "default")

    def set_boot_device(self, bootdevice: str) -> None:
        self._record(f"set boot {bootdevice}")
        self._write("boot", bootdevice)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=623)
    parser.add_argument("--user", default="admin")
    parser.add_argument("--state", type=Path, required=True)
    args = parser.parse_args()
    password = os.environ.get("BMC_PASSWORD")
    if not password:
        sys.exit("BMC_PASSWORD is not set")
    serversession.ServerSession = Sha1OnlySession
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = FileBmc(args.state, {args.user: password}, args.port, args.address)
    server.listen()


if __name__ == "__main__":
    main()
