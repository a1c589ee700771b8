"""The installer image's entry point: ``racker install-on-host [--prefix P] [--bin-dir D]
[--start]``, the image's ENTRYPOINT, dispatched by the bundle's entry script
(packaging/racker-entry.py) before racker's command line is loaded.

It lives here, with argparse, until it becomes a command of racker's CLI; the steps are in
``racker.release.host``. Every failure is one line on stderr, prefixed ``racker installer:``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from racker.errors import RackerError
from racker.release.host import HOW_TO_RUN, Host, install_on_host
from racker.release.layout import DEFAULT_PREFIX

PROG = "racker install-on-host"
# Where Flatcar (and Debian, Fedora) keep the CA bundle: tools are downloaded from the
# container, which has no certificates of its own.
HOST_CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=f"Install the racker this image holds onto the host: {HOW_TO_RUN}",
    )
    parser.add_argument("--prefix", type=Path, default=DEFAULT_PREFIX,
                        help="where releases live on the host (default: %(default)s)")  # fmt: skip
    parser.add_argument("--bin-dir", type=Path,
                        help="where the racker command link goes on the host (default: "
                        "/opt/bin on Flatcar, else /usr/local/bin)")  # fmt: skip
    parser.add_argument("--start", action="store_true",
                        help="also start the service (after 'racker factory check')")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(format="racker installer: %(message)s", level=logging.WARNING)

    if not getattr(sys, "frozen", False):
        print(f"racker installer: {PROG} runs only from the bundle in racker's installer "
              "image; elsewhere use 'racker install'", file=sys.stderr)  # fmt: skip
        return 2
    host = Host()
    os.environ.setdefault("SSL_CERT_FILE", str(host.root / HOST_CA_BUNDLE))
    try:
        install_on_host(Path(sys.executable).parent, host, print, args.prefix, args.bin_dir,
                        args.start)  # fmt: skip
    except RackerError as err:
        hint = f"; {err.hint}" if err.hint else ""
        print(f"racker installer: {err.message}{hint}", file=sys.stderr)
        return err.exit_code
    return 0
