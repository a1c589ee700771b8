"""The one error tree of racker (layer 0: stdlib only).

Errors are classified by what the caller does about them, not by where they were raised:

- ``ConfigError`` / ``InventoryError``: the operator fixes a file; the message names it.
- ``EnvironmentProblem``: the machine is not as needed (no such interface, not root).
- ``PacketError``: a peer sent something malformed; servers drop it, log it, and go on.
- ``BmcError`` and its subclasses: a BMC did not do what we asked; ``retryable`` says
  whether trying again may help.
- ``StateError``: the state directory is unusable (schema too new, locked).

Every error carries a one-line ``message`` and an optional ``hint``; the CLI prints both and
maps ``exit_code`` to the process exit status (see docs/cli.md).
"""

from __future__ import annotations

from dataclasses import dataclass


class RackerError(Exception):
    """Root of racker's errors. ``str(err)`` is the one-line message, never a secret."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class Problem:
    """One finding in a file: where, what, and how to fix it."""

    file: str
    line: int | None
    message: str
    hint: str | None = None
    value: str | None = None

    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    def __str__(self) -> str:
        text = f"{self.location()}: {self.message}"
        if self.value is not None:
            text += f" (got {self.value!r})"
        return text


class ProblemsError(RackerError):
    """Several problems found at once in input files; all are reported together."""

    exit_code = 3

    def __init__(self, problems: list[Problem], what: str) -> None:
        self.problems = list(problems)
        first = self.problems[0] if self.problems else None
        count = len(self.problems)
        summary = f"{what}: {count} problem{'s' if count != 1 else ''}"
        if first is not None:
            summary += f"; first: {first}"
        super().__init__(summary, first.hint if first else None)


class ConfigError(ProblemsError):
    """racker.yaml (or a profile/group file) is invalid."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems, "invalid configuration")


class InventoryError(ProblemsError):
    """The OEM directory (nodes.csv, credentials) is invalid."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems, "invalid rack metadata")


class NodeNotFound(RackerError):
    """A NODE argument matched no row of the inventory."""

    exit_code = 3


class EnvironmentProblem(RackerError):
    """The machine lacks something racker needs (an interface, root, a binary)."""

    exit_code = 4


class StateError(RackerError):
    """The state directory or its database cannot be used."""

    exit_code = 4


class PacketError(RackerError):
    """A malformed packet from a peer: dropped and logged, never fatal."""


class BmcError(RackerError):
    """A BMC operation failed. ``retryable`` tells the orchestrator whether to try again."""

    exit_code = 5
    retryable = True

    def __init__(self, node: str, message: str, hint: str | None = None) -> None:
        super().__init__(f"{node}: {message}", hint)
        self.node = node


class BmcUnreachable(BmcError):
    retryable = True


class BmcAuthFailed(BmcError):
    retryable = False


class BmcUnsupported(BmcError):
    retryable = False


class BmcTimeout(BmcError):
    retryable = True


class BmcTlsError(BmcError):
    """The BMC's HTTPS certificate failed verification: fix ``bmc.verify_tls`` or the BMC's
    certificate; trying again changes nothing."""

    retryable = False


class BmcNotConfigured(BmcError):
    """racker does not know the BMC's address or credentials: fix racker.yaml or the OEM files."""

    retryable = False
