"""OpenPGP signature checks with gpgv (layer 2): shared by the asset mirror and updates.

gpgv only needs a binary keyring; an ASCII-armored key is turned into one with ``gpg
--dearmor`` in a throwaway home directory, so nothing is imported into anybody's keyring.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from racker.errors import EnvironmentProblem, RackerError

ARMOR_HEADER = b"-----BEGIN PGP PUBLIC KEY BLOCK-----"


@contextlib.contextmanager
def keyring(key_file: Path) -> Iterator[Path]:
    """A temporary binary keyring holding the key(s) of ``key_file`` (armored or binary)."""
    if shutil.which("gpgv") is None:
        raise EnvironmentProblem("gpgv not found", "install the gpgv package")
    with tempfile.TemporaryDirectory(prefix="racker-gpg-") as tmp:
        try:
            raw = key_file.read_bytes()
        except OSError as exc:
            raise RackerError(f"{key_file}: cannot read the signing key: {exc.strerror}") from None
        if ARMOR_HEADER in raw:
            if shutil.which("gpg") is None:
                raise EnvironmentProblem(
                    f"{key_file} is ASCII-armored and gpg is not installed to read it",
                    "install the gnupg package, or give the key in binary form",
                )
            result = subprocess.run(
                ["gpg", "--batch", "--homedir", tmp, "--dearmor"],
                input=raw,
                capture_output=True,
                check=False,
            )
            if result.returncode != 0:
                raise RackerError(f"{key_file}: not a readable OpenPGP public key")
            raw = result.stdout
        ring = Path(tmp) / "keyring.gpg"
        ring.write_bytes(raw)
        yield ring


def signature_problem(ring: Path, signature: Path, path: Path) -> str | None:
    """None when ``signature`` is a good signature of ``path`` by a key in ``ring``;
    otherwise gpgv's last line of complaint."""
    result = subprocess.run(
        ["gpgv", "--keyring", str(ring), str(signature), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode == 0:
        return None
    return (result.stderr.strip().splitlines() or ["gpgv failed"])[-1]
