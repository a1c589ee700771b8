"""Group selection: most specific match wins, ties refused, selectors normalised."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from racker.errors import ConfigError
from racker.profiles import NoMatch, load_catalog
from tests.unit.profiles.helpers import BASE, NODE, SETTINGS, SINGLE_NIC, context, facts, write_dir

GROUPS = {
    "groups/default.yaml": "profile: boot\n",
    "groups/mac.yaml": 'profile: boot\nselectors: {mac: "52-54-00-AB-CD-EF"}\n',
    "groups/compute.yaml": "profile: boot\nselectors: {node_type: compute}\n",
    "groups/compute-ctl.yaml": "profile: boot\nselectors: {node_type: compute, role: controller}\n",
    "groups/rack2.yaml": "profile: boot\nselectors: {rack: r2, node_type: storage}\n",
    "groups/installed.yaml": "profile: boot\npriority: 10\nselectors: {os: installed}\n",
    "groups/uuid.yaml": (
        "profile: boot\npriority: 1\nselectors: {uuid: 0000AAAA-0000-0000-0000-000000000001}\n"
    ),
}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = write_dir(tmp_path_factory.mktemp("groups"), {**BASE, **GROUPS})
    return load_catalog(root, SETTINGS)


@pytest.mark.parametrize(
    ("case", "node", "kw", "fact_kw", "want"),
    [
        ("MAC beats any class selector", NODE, {"role": "controller"}, {}, "mac"),
        ("MAC selector (dashes, upper case) normalised, any NIC", NODE, {}, {}, "mac"),
        ("label selector missing: default", SINGLE_NIC, {}, {}, "default"),
        (
            "type selector",
            NODE.__class__(
                **{
                    **NODE.__dict__,
                    "primary_mac": "52:54:00:00:00:01",
                    "bmc_mac": "52:54:00:00:00:02",
                    "secondary_mac": None,
                }
            ),
            {},
            {},
            "compute",
        ),
        ("priority beats identity selectors", NODE, {"installed": True}, {}, "installed"),
        ("labels select", SINGLE_NIC, {"labels": {"rack": "r2"}}, {}, "rack2"),
        (
            "uuid, case-insensitive",
            None,
            {},
            {"uuid": "0000aaaa-0000-0000-0000-000000000001"},
            "uuid",
        ),
        ("nothing specific: default", None, {}, {}, "default"),
    ],
)
def test_selection(catalog, case, node, kw, fact_kw, want) -> None:  # type: ignore[no-untyped-def]
    mac = node.primary_mac if node else "52:54:00:99:99:99"
    match = catalog.select(facts(mac, **fact_kw), context(node, **kw))
    assert match.group.id == want, case
    assert match.why[0].startswith(f"group {want!r}")


def test_two_class_selectors_beat_one(catalog) -> None:  # type: ignore[no-untyped-def]
    other = NODE.__class__(
        **{**NODE.__dict__, "primary_mac": "52:54:00:00:00:01", "secondary_mac": None}
    )
    match = catalog.select(facts(other.primary_mac), context(other, role="controller"))
    assert match.group.id == "compute-ctl"
    assert any("less specific: 'compute'" in line for line in match.why)


def test_mac_selector_matches_any_nic_of_the_node(catalog) -> None:  # type: ignore[no-untyped-def]
    # The group names the secondary NIC; iPXE asks from the primary one: same machine.
    match = catalog.select(facts(NODE.primary_mac), context(NODE))
    assert match.group.id == "mac"


def test_no_default_group_means_no_match(tmp_path: Path) -> None:
    files = {**BASE, "groups/default.yaml": "profile: boot\nselectors: {node_type: gpu}\n"}
    catalog = load_catalog(write_dir(tmp_path, files), SETTINGS)
    with pytest.raises(NoMatch, match="no group matches 52:54:00:12:34:56"):
        catalog.render_ipxe(facts(), context())


@pytest.mark.parametrize(
    ("a", "b", "ambiguous"),
    [
        ("{node_type: compute}", "{role: worker}", True),
        ("{node_type: compute}", "{node_type: storage}", False),
        ('{mac: "52:54:00:00:00:01"}', '{mac: "52:54:00:00:00:02"}', False),
        ('{mac: "52:54:00:00:00:01"}', '{uuid: "abc"}', True),
        ("{node_type: compute, role: worker}", "{node_type: compute}", False),  # unequal
        ("{}", "{}", True),  # two defaults
    ],
)
def test_equally_specific_groups_that_can_overlap_are_refused(
    tmp_path: Path, a: str, b: str, ambiguous: bool
) -> None:
    files = {**BASE, "groups/a.yaml": f"profile: boot\nselectors: {a}\n",
             "groups/b.yaml": f"profile: boot\nselectors: {b}\n"}  # fmt: skip
    files.pop("groups/default.yaml")
    root = write_dir(tmp_path, files)
    if not ambiguous:
        load_catalog(root, SETTINGS)
        return
    with pytest.raises(ConfigError) as err:
        load_catalog(root, SETTINGS)
    problem = err.value.problems[0]
    assert problem.file.endswith("groups/b.yaml")
    assert "equally specific" in problem.message
    assert "priority" in (problem.hint or "")


def test_priority_resolves_a_tie(tmp_path: Path) -> None:
    files = {
        **BASE,
        "groups/a.yaml": "profile: boot\nselectors: {node_type: compute}\n",
        "groups/b.yaml": "profile: boot\npriority: 1\nselectors: {role: worker}\n",
    }
    catalog = load_catalog(write_dir(tmp_path, files), SETTINGS)
    assert catalog.select(facts(), context()).group.id == "b"


_NODES = [NODE, SINGLE_NIC, None]


@settings(max_examples=300, deadline=None)
@given(
    node=st.sampled_from(_NODES),
    role=st.sampled_from([None, "worker", "controller"]),
    installed=st.booleans(),
    rack=st.sampled_from([None, "r1", "r2"]),
    uuid=st.sampled_from(
        [None, "0000AAAA-0000-0000-0000-000000000001", "0000aaaa-0000-0000-0000-000000000002"]
    ),
    mac=st.sampled_from([None, "52:54:00:ab:cd:ef", "52:54:00:99:99:99"]),
)
def test_render_selection_picks_what_the_explanation_picks(  # type: ignore[no-untyped-def]
    catalog, node, role, installed, rack, uuid, mac
) -> None:
    # Renders use the ranked first match without reasons; `racker render` explains with
    # explain_selection. Both must always choose the same group.
    f = facts(mac or (node.primary_mac if node else None), **({"uuid": uuid} if uuid else {}))
    ctx = context(node, role=role, installed=installed, labels={"rack": rack} if rack else None)
    explained = catalog.select(f, ctx)
    picked = catalog.render_ipxe(f, ctx).match
    assert picked.group == explained.group
    assert picked.profile == explained.profile
