from __future__ import annotations

from pathlib import Path

from racker.web.boot_script import boot_script

GOLDEN = Path(__file__).parent / "golden" / "boot.ipxe"


def test_boot_script_matches_golden_file() -> None:
    assert boot_script("http://10.99.0.1:8080/") == GOLDEN.read_text()


def test_retry_ladder_ends_in_an_endless_loop() -> None:
    lines = boot_script("http://s").splitlines()
    assert lines[0] == "#!ipxe"
    assert lines[-1] == "goto racker-fetch"
    delays = [
        line.split("set racker-delay ")[1].split()[0]
        for line in lines
        if "set racker-delay" in line
    ]
    assert delays == ["1", "2", "4", "8", "16", "30"]
