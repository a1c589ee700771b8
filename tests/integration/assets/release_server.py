"""A local Flatcar release server for tests: signed files, Range support, fault injection.

Serves ``<root>/<version>/NAME`` (+ ``.DIGESTS``, ``.sig``) and ``current/version.txt`` on
127.0.0.1 only. The signing key is generated per test session in a throwaway GNUPGHOME.
"""

from __future__ import annotations

import hashlib
import http.server
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

KEY_PARAMS = """\
%no-protection
Key-Type: eddsa
Key-Curve: ed25519
Key-Usage: sign
Name-Real: racker test release key
Name-Email: release@racker.invalid
Expire-Date: 0
%commit
"""


@dataclass
class SigningKey:
    home: Path
    public: Path  # armored public key file, as an operator would pass with --key

    def sign(self, path: Path) -> None:
        sig = path.with_name(path.name + ".sig")
        sig.unlink(missing_ok=True)
        subprocess.run(
            ["gpg", "--batch", "--homedir", str(self.home), "--detach-sign",
             "-o", str(sig), str(path)],
            check=True, capture_output=True,
        )  # fmt: skip
        stop_agent(self.home)


def stop_agent(home: Path) -> None:
    """gpg starts a gpg-agent per home directory; stop it so no test leaves a process behind."""
    subprocess.run(
        ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False, capture_output=True
    )


def make_key(directory: Path, name: str = "release") -> SigningKey:
    home = directory / f"gnupg-{name}"
    home.mkdir(mode=0o700)
    subprocess.run(
        ["gpg", "--batch", "--homedir", str(home), "--gen-key"],
        input=KEY_PARAMS.encode(), check=True, capture_output=True,
    )  # fmt: skip
    public = directory / f"{name}.asc"
    out = subprocess.run(
        ["gpg", "--batch", "--homedir", str(home), "--armor", "--export"],
        check=True, capture_output=True,
    )  # fmt: skip
    public.write_bytes(out.stdout)
    stop_agent(home)
    return SigningKey(home, public)


def write_digests(path: Path) -> None:
    data = path.read_bytes()
    name = path.name
    path.with_name(name + ".DIGESTS").write_text(
        f"# MD5 HASH\n{hashlib.md5(data).hexdigest()}  {name}\n"  # noqa: S324 - format fidelity
        f"# SHA1 HASH\n{hashlib.sha1(data).hexdigest()}  {name}\n"  # noqa: S324
        f"# SHA512 HASH\n{hashlib.sha512(data).hexdigest()}  {name}\n",
        encoding="utf-8",
    )


def publish(root: Path, version: str, key: SigningKey, sizes: dict[str, int]) -> None:
    """Create a signed release: NAME with deterministic content of the given size."""
    rel = root / version
    rel.mkdir(parents=True, exist_ok=True)
    for name, size in sizes.items():
        seed = hashlib.sha256(f"{version}/{name}".encode()).digest()
        blob = (seed * (size // len(seed) + 1))[:size]
        (rel / name).write_bytes(blob)
        write_digests(rel / name)
        key.sign(rel / name)
    (root / "current").mkdir(exist_ok=True)
    (root / "current" / "version.txt").write_text(
        f"FLATCAR_BUILD=1\nFLATCAR_VERSION={version}\nFLATCAR_SDK_VERSION={version}\n"
    )


@dataclass
class ReleaseServer:
    root: Path
    url: str = ""
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range)
    # path -> bytes after which the next response for it is cut off (then cleared)
    drop_after: dict[str, int] = field(default_factory=dict)
    ignore_range: bool = False


def _handler(state: ReleaseServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            state.requests.append((self.path, rng))
            path = (state.root / self.path.lstrip("/")).resolve()
            if state.root.resolve() not in path.parents or not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            start = 0
            if rng and not state.ignore_range and rng.startswith("bytes="):
                start = int(rng[6:].split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            cut = state.drop_after.pop(self.path, None)
            if cut is not None:
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@contextmanager
def serve(root: Path) -> Iterator[ReleaseServer]:
    state = ReleaseServer(root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
