"""``Catalog.ipxe_per_node``: may a node's iPXE script be cached by its MAC and rendered ahead?

Decided from the groups' selectors and the variables the iPXE templates read. When the answer
is yes, the rendered script must really be the same whatever else the request says: each case
renders with two different sets of request facts and compares.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from racker.profiles import NodeFacts, RenderSettings, load_catalog
from tests.unit.profiles.helpers import BASE, NODE, SETTINGS, context, write_dir

PLAIN = NodeFacts(mac=NODE.primary_mac)
OTHER = NodeFacts(
    mac=NODE.primary_mac,
    uuid="4c4c4544-0001",
    serial="SN-1",
    hostname="from-dhcp",
    platform="pcbios",
    buildarch="i386",
    query={"mac": NODE.primary_mac, "extra": "1"},
)
IPXE_PROFILE = "ipxe: own.ipxe\nignition: boot.ign.yaml\n"

# (case, files replaced in or added to BASE, per node?)
CASES = [
    ("kernel/initrd/args from racker's own knowledge", {}, True),
    ("an args template reads the request's platform",
     {"profiles/boot.yaml": 'boot: {kernel: k, args: ["p={{ platform }}"]}\n'}, False),
    ("two args on one YAML line, the first reads the platform",
     {"profiles/boot.yaml": 'boot: {kernel: k, args: ["p={{ platform }}", "quiet"]}\n'}, False),
    ("an iPXE template reads the raw query",
     {"profiles/boot.yaml": IPXE_PROFILE, "templates/own.ipxe": "#!ipxe\n# {{ query }}\n"}, False),
    ("an iPXE template reads only the node and the MAC",
     {"profiles/boot.yaml": IPXE_PROFILE,
      "templates/own.ipxe": "#!ipxe\n# {{ mac }} {{ node.hostname }} {{ ignition_url }}\n"}, True),
    ("iPXE's own ${platform} is not a template variable",
     {"profiles/boot.yaml": IPXE_PROFILE,
      "templates/own.ipxe": "#!ipxe\niseq ${platform} efi && exit ||\n"}, True),
    ("an included template reads the uuid",
     {"profiles/boot.yaml": IPXE_PROFILE,
      "templates/own.ipxe": "#!ipxe\n{% include 'part.ipxe' %}\n",
      "templates/part.ipxe": "# {{ uuid }}\n"}, False),
    ("an included template reads the node only",
     {"profiles/boot.yaml": IPXE_PROFILE,
      "templates/own.ipxe": "#!ipxe\n{% include 'part.ipxe' %}\n",
      "templates/part.ipxe": "# {{ hostname }}\n"}, False),  # hostname: the request's, if unknown
    ("a template renders another by name (unknowable)",
     {"profiles/boot.yaml": IPXE_PROFILE,
      "templates/own.ipxe": "#!ipxe\n# {{ render_file('part.ipxe') }}\n",
      "templates/part.ipxe": "{{ serial }}\n"}, False),
    ("a group selects by uuid",
     {"groups/one.yaml": "profile: boot\nselectors: {uuid: 4c4c4544-0001}\n"}, False),
    ("a group selects by MAC and role",
     {"groups/one.yaml": f"profile: boot\nselectors: {{mac: '{NODE.primary_mac}', role: w}}\n"},
     True),
    ("the Ignition template reads request facts (not an iPXE answer)",
     {"templates/boot.ign.yaml": BASE["templates/boot.ign.yaml"] + "# {{ serial }} {{ query }}\n"},
     True),
]  # fmt: skip


@pytest.mark.parametrize(("case", "files", "per_node"), CASES, ids=[c[0] for c in CASES])
def test_per_node_decision_and_what_it_promises(
    tmp_path: Path, case: str, files: dict[str, str], per_node: bool
) -> None:
    catalog = load_catalog(write_dir(tmp_path, {**BASE, **files}), SETTINGS)
    assert catalog.ipxe_per_node is per_node, case
    assert (catalog.ipxe_reads_request is None) is per_node, case  # a reason when not
    if per_node:
        ctx = context()
        plain = catalog.render_ipxe(PLAIN, ctx).text
        assert catalog.render_ipxe(OTHER, ctx).text == plain, case


def test_the_decision_is_needed_a_request_fact_changes_the_script(tmp_path: Path) -> None:
    files = {"profiles/boot.yaml": 'boot: {kernel: k, args: ["p={{ platform }}"]}\n'}
    catalog = load_catalog(write_dir(tmp_path, {**BASE, **files}), SETTINGS)
    ctx = context()
    assert catalog.render_ipxe(PLAIN, ctx).text != catalog.render_ipxe(OTHER, ctx).text


def test_the_built_in_flatcar_catalog_is_per_node() -> None:
    catalog = load_catalog(None, RenderSettings())
    assert catalog.ipxe_per_node


def test_the_reason_names_the_profile_and_what_it_reads(tmp_path: Path) -> None:
    files = {"profiles/boot.yaml": 'boot: {kernel: k, args: ["p={{ platform }} {{ uuid }}"]}\n'}
    catalog = load_catalog(write_dir(tmp_path, {**BASE, **files}), SETTINGS)
    assert catalog.ipxe_reads_request == (
        f"the boot section of profile 'boot' ({tmp_path}/profiles/boot.yaml) uses platform, uuid"
    )
