"""Ignition's own validator, when the machine has it: ``ignition-validate`` (Debian package
``ignition``, Ignition 2.14, config specs 3.0-3.4).

racker's own check (``racker.profiles.ignition``) runs on every render; this one runs where a
person or a start-up is waiting anyway (``racker render``, loading the profiles), so an
operator's template that Ignition would reject is caught before a node boots with it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

VALIDATOR = "ignition-validate"
TIMEOUT = 10.0


def available() -> bool:
    return shutil.which(VALIDATOR) is not None


def ignition_problems(config: dict[str, Any]) -> list[str] | None:
    """What ``ignition-validate`` says is wrong with ``config`` ([] for nothing); None when the
    validator is not installed."""
    path = shutil.which(VALIDATOR)
    if path is None:
        return None
    try:
        result = subprocess.run(
            [path, "-"],
            input=json.dumps(config),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [f"{VALIDATOR} did not run: {exc}"]
    if result.returncode == 0:
        return []
    lines = [ln.strip() for ln in (result.stderr + result.stdout).splitlines() if ln.strip()]
    return lines or [f"{VALIDATOR} exited with {result.returncode}"]
