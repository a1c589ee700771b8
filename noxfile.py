"""Developer sessions. CI runs scripts/test (the README's test command), which is `tests`."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """Every test, including those that need root and network namespaces (run as root)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("-e", ".[lint]")
    session.run("ruff", "check", "src", "tests", "bench", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "bench", "noxfile.py")
    session.run("mypy", "src")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against the reference tools (root; figures go to docs/benchmarks.md)."""
    session.install("-e", ".[test]")
    scripts = session.posargs or sorted(str(p) for p in Path("bench").glob("*.py"))
    for script in scripts:
        session.run("python", script)


@nox.session
def bundle(session: nox.Session) -> None:
    """The self-contained bundle (issue 9): dist/racker-VERSION-linux-ARCH.tar.gz + .sha256,
    racker and its own Python runtime frozen by PyInstaller (one-folder mode), from PyPI."""
    session.install(".", "pyinstaller>=6")
    session.run("python", "packaging/build_bundle.py", *session.posargs)


@nox.session
def image(session: nox.Session) -> None:
    """The installer image: dist/racker-installer-VERSION.oci.tar, FROM scratch
    around the bundle (packaging/Containerfile, built with podman as root), which podman load
    and docker load accept. Builds the bundle first when dist/ has none."""
    session.install(".")
    name = session.run(
        "python", "-c",
        "from racker import __version__; from racker.release.bundle import archive_name, "
        "machine_arch; print(archive_name(__version__, machine_arch()))",
        silent=True,
    )  # fmt: skip
    if not (Path("dist") / str(name).strip()).is_file():
        session.install("pyinstaller>=6")
        session.run("python", "packaging/build_bundle.py")
    session.run("python", "packaging/build_image.py", *session.posargs)
