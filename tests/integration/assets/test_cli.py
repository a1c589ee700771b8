"""`racker assets fetch|list` through the CLI against the local release server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from racker.cli import cli
from tests.integration.assets.release_server import make_key, publish, serve
from tests.integration.assets.test_fetch import SIZES, VERSION

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")


def test_fetch_then_list(tmp_path: Path) -> None:
    key = make_key(tmp_path)
    publish(tmp_path / "server", VERSION, key, SIZES)
    config = tmp_path / "racker.yaml"
    with serve(tmp_path / "server") as server:
        config.write_text(
            f"http: {{assets_dir: {tmp_path / 'assets'}}}\n"
            f"install: {{channel: beta, release_url: '{server.url}', signing_key: {key.public}}}\n"
        )
        base = ["--config", str(config), "--state-dir", str(tmp_path / "state")]
        runner = CliRunner()
        first = runner.invoke(cli, [*base, "assets", "fetch", "flatcar"])
        assert first.exit_code == 0, first.output
        assert f"Flatcar {VERSION}: fetched and verified" in first.output
        again = runner.invoke(cli, [*base, "assets", "fetch", "flatcar"])
        assert f"Flatcar {VERSION}: already current" in again.output
    listed = runner.invoke(cli, [*base, "assets", "list", "--json"])
    rows = json.loads(listed.output)
    assert rows[0]["version"] == VERSION
    assert rows[0]["current_for"] == ["beta"]
    assert rows[0]["files"] == SIZES
    text = runner.invoke(cli, [*base, "assets", "list"]).output
    assert text.startswith(f"flatcar {VERSION}  3 files")


def test_fetch_without_key_explains(tmp_path: Path) -> None:
    config = tmp_path / "racker.yaml"
    config.write_text(f"http: {{assets_dir: {tmp_path / 'assets'}}}\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "assets", "fetch", "flatcar"])
    assert result.exit_code == 1
    assert "no signing key" in result.output
    assert "--key FILE" in result.output
