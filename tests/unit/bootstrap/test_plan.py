"""Plans from inventory and flags, and the lokocfg rendering (golden text)."""

from __future__ import annotations

from pathlib import Path

import pytest

from racker.bootstrap.lokomotive import ClusterSettings, apply_command, render_lokocfg
from racker.bootstrap.plan import PlanError, PlanRequest, Provision, Role, make_plan
from racker.model import Node


def node(i: int, node_type: str) -> Node:
    return Node(i + 1, i, f"52:54:00:00:00:{i:02x}", f"52:54:00:00:01:{i:02x}", None, node_type)


RACK = [node(1, "big"), node(2, "big"), node(3, "small"), node(4, "small"), node(5, "small")]
L = Provision.LOKOMOTIVE


@pytest.mark.parametrize(
    ("nodes", "request_", "roles"),
    [
        (RACK, PlanRequest(), ["flatcar"] * 5),
        (RACK, PlanRequest(L, 1, "big"), ["controller", "worker", "worker", "worker", "worker"]),
        (
            RACK,
            PlanRequest(L, 3, "small"),
            ["worker", "worker", "controller", "controller", "controller"],
        ),
        (
            RACK,
            PlanRequest(L, 1, "small", "big", 2),
            ["storage", "storage", "controller", "worker", "worker"],
        ),
        (
            RACK,
            PlanRequest(L, 1, "small", "small", 2),
            ["worker", "worker", "controller", "storage", "storage"],
        ),
        (RACK[2:], PlanRequest(L, 1), ["controller", "worker", "worker"]),  # one type: implied
    ],
)
def test_roles(nodes: list[Node], request_: PlanRequest, roles: list[str]) -> None:
    plan = make_plan(nodes, request_)
    assert [str(p.role) for p in plan.nodes] == roles
    assert [p.node for p in plan.nodes] == nodes


@pytest.mark.parametrize(
    ("nodes", "request_", "message"),
    [
        ([], PlanRequest(), "no nodes selected"),
        (
            RACK,
            PlanRequest(L, 3, "big"),
            "3 controllers of type 'big' wanted, but the selection has 2",
        ),
        (RACK, PlanRequest(L, 2, "small"), "1 or 3 controllers"),
        (RACK, PlanRequest(L, 1), "which node type runs the controllers"),
        (RACK, PlanRequest(L, 1, "nosuch"), "has 0 such node"),
        (RACK, PlanRequest(L, 3, "small", "small", 1), "only 0 such node(s)"),
        (RACK, PlanRequest(L, 1, "big", "small"), "go together"),
        (
            RACK,
            PlanRequest(Provision.FLATCAR, controller_type="big"),
            "only apply to --provision lokomotive",
        ),
    ],
)
def test_impossible_plans_are_refused(
    nodes: list[Node], request_: PlanRequest, message: str
) -> None:
    with pytest.raises(PlanError) as info:
        make_plan(nodes, request_)
    assert message in info.value.message
    assert info.value.hint


def test_describe() -> None:
    lines = make_plan(RACK[:2], PlanRequest(L, 1, "big")).describe()
    assert lines[0] == "provision lokomotive on 2 node(s)"
    assert "controller" in lines[1] and "big-000001" in lines[1]


GOLDEN = """\
# Written by racker bootstrap --provision lokomotive. racker is the boot server.
cluster "bare-metal" {
  asset_dir              = "/var/lib/racker/lokomotive/assets"
  cluster_name           = "rack1"
  k8s_domain_name        = "rack1.rack.local"
  matchbox_http_endpoint = "http://10.0.0.1:8080"
  os_channel             = "stable"
  os_version             = "current"
  ssh_pubkeys            = [
    "ssh-ed25519 AAAA op@x",
  ]

  controller_names   = [
    "small-000003",
  ]
  controller_macs    = [
    "52:54:00:00:00:03",
  ]
  controller_domains = [
    "small-000003.rack.local",
  ]

  worker_names   = [
    "big-000001",
    "small-000004",
  ]
  worker_macs    = [
    "52:54:00:00:00:01",
    "52:54:00:00:00:04",
  ]
  worker_domains = [
    "big-000001.rack.local",
    "small-000004.rack.local",
  ]

  labels = {
    "big-000001" = "storage.racker.io/node=true"
  }
}
"""


def test_lokocfg_golden() -> None:
    plan = make_plan([RACK[0], RACK[2], RACK[3]], PlanRequest(L, 1, "small", "big", 1))
    settings = ClusterSettings(
        "rack1",
        "http://10.0.0.1:8080",
        Path("/var/lib/racker/lokomotive/assets"),
        ssh_pubkeys=("ssh-ed25519 AAAA op@x",),
    )
    assert render_lokocfg(plan, settings) == GOLDEN
    assert apply_command(Path("/d")) == [
        "lokoctl",
        "cluster",
        "apply",
        "--confirm",
        "--lokocfg",
        "/d",
    ]


def test_lokocfg_escapes_strings() -> None:
    plan = make_plan(RACK[2:3], PlanRequest(L, 1))
    text = render_lokocfg(plan, ClusterSettings('a"b', "http://x", Path("/a\\b")))
    assert 'cluster_name           = "a\\"b"' in text
    assert "worker_names   = []" in text
    assert "labels" not in text
    assert Role.CONTROLLER in {p.role for p in plan.nodes}
