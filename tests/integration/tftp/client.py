"""A small blocking TFTP client that sends windowsize (RFC 7440), for tests and bench/tftp.py.

None of the packaged clients (tftp-hpa, atftp, curl, busybox) nor tftpy's client asks for a
window, so this one does. Run it in a namespace as a script:

    python -m tests.integration.tftp.client HOST FILE OUT [--port 69] [--blksize N]
        [--windowsize N] [--tsize] [--abort-after-oack]

It prints one JSON line: the OACK options, the bytes received, the seconds taken, and an error.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from dataclasses import asdict, dataclass, field

from racker.tftp.packets import (
    Error,
    Opcode,
    OptionAck,
    decode,
    encode_ack,
    encode_error,
    encode_request,
)


@dataclass
class Result:
    oack: dict[str, str] = field(default_factory=dict)
    size: int = 0
    seconds: float = 0.0
    error: str = ""
    blocks: int = 0


def fetch(
    host: str,
    filename: str,
    out: str | None,
    *,
    port: int = 69,
    options: tuple[tuple[str, str], ...] = (),
    abort_after_oack: bool = False,
    timeout: float = 1.0,
    tries: int = 10,
) -> Result:
    result = Result()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(timeout)
    started = time.monotonic()
    request = encode_request(Opcode.RRQ, filename, "octet", options)
    last_sent, peer = request, (host, port)
    blksize, windowsize, expected, in_window = 512, 1, 1, 0
    sink = open(out, "wb") if out else None  # noqa: SIM115 - closed in finally
    try:
        misses = 0
        sock.sendto(request, peer)
        while True:
            try:
                data, addr = sock.recvfrom(65536)
            except TimeoutError:
                misses += 1
                if misses > tries:
                    result.error = "timed out"
                    break
                sock.sendto(last_sent, peer)
                continue
            if peer[1] == port:
                peer = addr  # the server's transfer ID
            elif addr != peer:
                sock.sendto(encode_error(5, "Unknown transfer ID"), addr)
                continue
            misses = 0
            if len(data) >= 4 and data[0] == 0 and data[1] == 3:  # DATA: the hot path
                block = (data[2] << 8) | data[3]
                if block != expected & 0xFFFF:
                    # A gap or a duplicate: ACK the last block received in order (RFC 7440 4).
                    in_window = 0
                    last_sent = encode_ack(expected - 1)
                    sock.sendto(last_sent, peer)
                    continue
                if sink:
                    sink.write(memoryview(data)[4:])
                length = len(data) - 4
                result.size += length
                expected += 1
                in_window += 1
                final = length < blksize
                if final or in_window >= windowsize:
                    in_window = 0
                    last_sent = encode_ack(block)
                    sock.sendto(last_sent, peer)
                if final:
                    break
                continue
            packet = decode(data)
            if isinstance(packet, Error):
                result.error = f"error {packet.code}: {packet.message}"
                break
            if isinstance(packet, OptionAck):
                result.oack = {k.lower(): v for k, v in packet.options}
                if abort_after_oack:
                    sock.sendto(encode_error(8, "User aborted the transfer"), peer)
                    break
                blksize = int(result.oack.get("blksize", 512))
                windowsize = int(result.oack.get("windowsize", 1))
                last_sent = encode_ack(0)
                sock.sendto(last_sent, peer)
    finally:
        if sink:
            sink.close()
        sock.close()
    result.blocks = expected - 1
    result.seconds = time.monotonic() - started
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("file")
    parser.add_argument("out")
    parser.add_argument("--port", type=int, default=69)
    parser.add_argument("--blksize", type=int)
    parser.add_argument("--windowsize", type=int)
    parser.add_argument("--tsize", action="store_true")
    parser.add_argument("--abort-after-oack", action="store_true")
    args = parser.parse_args(argv)
    options: list[tuple[str, str]] = []
    if args.tsize:
        options.append(("tsize", "0"))
    if args.blksize:
        options.append(("blksize", str(args.blksize)))
    if args.windowsize:
        options.append(("windowsize", str(args.windowsize)))
    result = fetch(
        args.host,
        args.file,
        None if args.out == "-" else args.out,
        port=args.port,
        options=tuple(options),
        abort_after_oack=args.abort_after_oack,
    )
    print(json.dumps(asdict(result)))
    return 1 if result.error else 0


if __name__ == "__main__":
    sys.exit(main())
