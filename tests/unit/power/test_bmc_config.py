"""racker.yaml's bmc section (driver, verify_tls) and where auto keeps its answers."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from racker.errors import ConfigError
from racker.power.drivers import StoredProtocols
from racker.rack.config import parse_config
from racker.store import DB_NAME, Store


@pytest.mark.parametrize(
    ("text", "driver", "verify"),
    [
        ("", "auto", True),
        ("bmc: {driver: redfish}", "redfish", True),
        ("bmc: {driver: ipmi, verify_tls: false}", "ipmi", False),
        ("bmc: {verify_tls: true}", "auto", True),
        ("bmc: {verify_tls: /etc/racker/bmc-ca.pem}", "auto", Path("/etc/racker/bmc-ca.pem")),
        ("bmc: {verify_tls: 'false-ca.pem'}", "auto", Path("false-ca.pem")),
    ],
)
def test_bmc_driver_and_verify_tls(text: str, driver: str, verify: bool | Path) -> None:
    bmc = parse_config(text).bmc
    assert (bmc.driver, bmc.verify_tls) == (driver, verify)
    assert type(bmc.verify_tls) is type(verify)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bmc: {driver: snmp}", "bmc.driver: must be one of auto, redfish, ipmi, fake"),
        ("bmc: {verify_tls: 3}", "bmc.verify_tls: expected a path"),
        ("bmc: {verify_tls: [a]}", "bmc.verify_tls: expected a single value"),
    ],
)
def test_bad_bmc_settings_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert message in str(info.value.problems[0])


def test_store_keeps_bmc_protocols(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        assert store.bmc_protocols() == {}
        store.set_bmc_protocol("10.0.0.131", "redfish", now=1.0)
        store.set_bmc_protocol("10.0.0.132:6230", "ipmi", now=2.0)
        store.set_bmc_protocol("10.0.0.131", "ipmi", now=3.0)
        assert store.bmc_protocols() == {"10.0.0.131": "ipmi", "10.0.0.132:6230": "ipmi"}
        store.set_bmc_protocol("10.0.0.132:6230", None)
        assert store.bmc_protocols() == {"10.0.0.131": "ipmi"}
        with pytest.raises(sqlite3.IntegrityError):
            store.set_bmc_protocol("10.0.0.133", "snmp")


def test_a_version_1_database_gains_the_table(tmp_path: Path) -> None:
    from racker.store import MIGRATIONS

    db = sqlite3.connect(tmp_path / DB_NAME)
    db.executescript(MIGRATIONS[0])
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO allocations VALUES ('52:54:00:00:00:01', 'bmc', '10.0.0.5', 0)")
    db.commit()
    db.close()
    with Store.open(tmp_path) as store:
        assert store.schema_version == len(MIGRATIONS) == 2
        assert list(store.allocations()) == ["52:54:00:00:00:01"]  # kept
        store.set_bmc_protocol("10.0.0.5", "redfish")
        assert store.bmc_protocols() == {"10.0.0.5": "redfish"}


def test_stored_protocols_survive_the_process(tmp_path: Path) -> None:
    first = StoredProtocols(tmp_path)
    assert first.recall("10.0.0.131") is None
    assert not (tmp_path / DB_NAME).exists()  # reading created nothing
    first.remember("10.0.0.131", "redfish")
    first.remember("10.0.0.132", "ipmi")
    first.remember("10.0.0.132", None)
    second = StoredProtocols(tmp_path)  # the next racker command
    assert second.recall("10.0.0.131") == "redfish"
    assert second.recall("10.0.0.132") is None


def test_an_unusable_store_costs_only_the_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "racker.power")
    (tmp_path / DB_NAME).write_text("not a database")
    memory = StoredProtocols(tmp_path)
    assert memory.recall("10.0.0.131") is None
    memory.remember("10.0.0.131", "redfish")
    assert memory.recall("10.0.0.131") == "redfish"  # for this process
    assert "not stored" in caplog.text
