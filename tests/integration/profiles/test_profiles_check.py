"""Loading the profiles for the boot stack runs Ignition's own validator (app.profiles_check):
an operator's template that racker's own check accepts but Ignition rejects stops the start
(and a SIGHUP reload), naming the profile and the node it was rendered for."""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

import pytest

from racker.app.profiles_check import validate_profiles
from racker.profiles import TemplateError, load_catalog
from racker.rack.addressing import plan_addresses
from racker.rack.config import Config
from racker.rack.interfaces import LocalInterface
from racker.rack.loading import Rack
from racker.rack.oem import read_oem
from tests.unit.profiles.helpers import BASE, SETTINGS, write_dir

EXAMPLE = Path(__file__).parents[3] / "fixtures" / "oem" / "example"
URL = "http://10.99.0.1:8080"

pytestmark = pytest.mark.skipif(
    shutil.which("ignition-validate") is None,
    reason="ignition-validate is not installed (scripts/setup-host installs Debian's ignition)",
)

# racker's own check accepts this unit (a name, contents); systemd's parser does not.
BROKEN_UNIT = """
    ignition: {version: 3.3.0}
    systemd:
      units:
        - name: hello.service
          enabled: true
          contents: "[Unit\\nDescription=never closed the section header\\n"
    """


@pytest.fixture
def rack(tmp_path: Path) -> Rack:
    oem = tmp_path / "oem"
    shutil.copytree(EXAMPLE, oem)
    address = ipaddress.IPv4Interface("10.99.0.1/24")
    interface = LocalInterface("pxe0", "52:54:00:99:02:01", 1500, (address,))
    config = Config()
    return Rack(config, read_oem(oem), interface, plan_addresses(config, (address,)), tmp_path)


def test_the_builtin_profiles_pass(rack: Rack) -> None:
    catalog = load_catalog(None, SETTINGS)
    # flatcar-install and installed, each installing and installed
    assert validate_profiles(catalog, rack, SETTINGS, URL) >= 2


def test_a_template_ignition_rejects_stops_the_load(rack: Rack, tmp_path: Path) -> None:
    profiles = write_dir(tmp_path / "profiles", {**BASE, "templates/boot.ign.yaml": BROKEN_UNIT})
    catalog = load_catalog(profiles, SETTINGS)  # racker's own check has no objection
    with pytest.raises(TemplateError) as info:
        validate_profiles(catalog, rack, SETTINGS, URL)
    message = info.value.message
    assert "profile boot's Ignition (its config, rendered for red-9900" in message
    assert "fails ignition-validate" in message
    assert info.value.problem.file.endswith("boot.ign.yaml")
