"""Load-time errors name the file and line; everything is rendered once at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from racker.errors import ConfigError
from racker.profiles import TemplateError, load_catalog
from tests.unit.profiles.helpers import BASE, SETTINGS, context, facts, write_dir

# (case, files replaced in BASE, expected file suffix, expected line, message fragment)
BROKEN = [
    ("YAML syntax", {"groups/default.yaml": "profile: [boot\n"}, "groups/default.yaml", 2,
     "not valid YAML"),
    ("unknown group key", {"groups/default.yaml": "profile: boot\nselector: {}\n"},
     "groups/default.yaml", 2, "unknown key 'selector'"),
    ("unknown profile", {"groups/default.yaml": "profile: nope\n"}, "groups/default.yaml", 1,
     "profile 'nope' not found"),
    ("bad MAC selector", {"groups/default.yaml": "profile: boot\nselectors:\n  mac: 52:54:00\n"},
     "groups/default.yaml", 3, "not a MAC"),
    ("bad os selector", {"groups/default.yaml": "profile: boot\nselectors: {os: done}\n"},
     "groups/default.yaml", 2, "must be one of installed"),
    ("template syntax in a file", {"templates/boot.ign.yaml": "ignition: {version: 3.3.0}\n"
     "\n{% if x %}\n"}, "templates/boot.ign.yaml", 3, "template syntax"),
    ("undefined variable in a file", {"templates/boot.ign.yaml": "ignition: {version: 3.3.0}\n"
     "# {{ hostnme }}\n"}, "templates/boot.ign.yaml", 2, "'hostnme' is undefined"),
    ("undefined variable inline", {"profiles/boot.yaml": "ignition: boot.ign.yaml\nboot:\n"
     "  kernel: k\n  args:\n    - a\n    - '{{ nodes }}'\n"}, "profiles/boot.yaml", 6,
     "'nodes' is undefined"),
    ("template syntax inline", {"profiles/boot.yaml": "boot:\n  kernel: '{{ x'\n"},
     "profiles/boot.yaml", 2, "template syntax"),
    ("missing template", {"profiles/boot.yaml": "boot: {kernel: k}\nignition: nope.yaml\n"},
     "profiles/boot.yaml", 2, "template 'nope.yaml' not found"),
    ("profile without boot or ipxe", {"profiles/boot.yaml": "ignition: boot.ign.yaml\n"},
     "profiles/boot.yaml", 1, "needs `boot`"),
    ("invalid Ignition rendered", {"templates/boot.ign.yaml": "ignition: {version: 3.3.0}\n"
     "storage: {files: [{path: etc/x, mode: '0644'}]}\n"}, "templates/boot.ign.yaml", None,
     "must be absolute"),
    ("Ignition that is not YAML", {"templates/boot.ign.yaml": "ignition: {version: {{ '[' }}\n"},
     "templates/boot.ign.yaml", None, "did not render to valid YAML"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "files", "file", "line", "fragment"), BROKEN)
def test_broken_directories_are_refused_with_file_and_line(
    tmp_path: Path, case: str, files: dict[str, str], file: str, line: int | None, fragment: str
) -> None:
    root = write_dir(tmp_path, {**BASE, **files})
    with pytest.raises(ConfigError) as err:
        load_catalog(root, SETTINGS)
    problems = err.value.problems
    assert len(problems) == 1, f"{case}: one mistake, one problem: {[str(p) for p in problems]}"
    problem = problems[0]
    assert problem.file.endswith(file), case
    assert problem.line == line, case
    assert fragment in str(problem), case


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    files = {**BASE, "groups/a.yaml": "profile: nope\n", "groups/b.yaml": "profile: boot\nx: 1\n"}
    with pytest.raises(ConfigError) as err:
        load_catalog(write_dir(tmp_path, files), SETTINGS)
    assert len(err.value.problems) == 2


def test_error_only_on_the_branch_of_an_optional_nic_is_caught_at_load(tmp_path: Path) -> None:
    # The sample contexts include a node without a secondary NIC: a template that forgets
    # that case fails at load, not when the first such node boots.
    ign = "ignition: {version: 3.3.0}\n# {{ node.secondary_mac.upper() }}\n"
    with pytest.raises(ConfigError, match=r"secondary_mac|upper"):
        load_catalog(write_dir(tmp_path, {**BASE, "templates/boot.ign.yaml": ign}), SETTINGS)


def test_render_time_errors_carry_the_template_line(tmp_path: Path) -> None:
    # query is empty in the samples: the guarded line fails only for a real request.
    ign = "ignition: {version: 3.3.0}\n{% if query %}\n# {{ query.nothing }}\n{% endif %}\n"
    catalog = load_catalog(write_dir(tmp_path, {**BASE, "templates/boot.ign.yaml": ign}), SETTINGS)
    with pytest.raises(TemplateError) as err:
        catalog.render_ignition(facts(query={"stage": "x"}), context())  # type: ignore[arg-type]
    assert err.value.problem.line == 3
    assert err.value.problem.file.endswith("templates/boot.ign.yaml")


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="profile directory not found"):
        load_catalog(tmp_path / "nope", SETTINGS)


def test_no_groups(tmp_path: Path) -> None:
    files = {k: v for k, v in BASE.items() if not k.startswith("groups/")}
    with pytest.raises(ConfigError, match="no groups"):
        load_catalog(write_dir(tmp_path, files), SETTINGS)


def test_templates_see_metadata_query_and_labels(tmp_path: Path) -> None:
    files = {
        **BASE,
        "profiles/boot.yaml": (
            "boot:\n  kernel: '{{ assets_url }}/k'\n"
            "  args: ['a={{ metadata.a }}', 'b={{ metadata.b }}',"
            ' \'q={{ query.get("q", "-") }}\','
            ' \'rack={{ labels.get("rack", "-") }}\']\n'
            "metadata: {a: from-profile, b: from-profile}\n"
        ),
        "groups/default.yaml": "profile: boot\nmetadata: {b: from-group}\n",
    }
    catalog = load_catalog(write_dir(tmp_path, files), SETTINGS)
    out = catalog.render_ipxe(
        facts(query={"q": "1"}),  # type: ignore[arg-type]
        context(labels={"rack": "r1"}),
    )
    assert "a=from-profile b=from-group q=1 rack=r1" in out.text
    meta = catalog.render_metadata(facts(), context())
    assert meta["b"] == "from-group"
    assert meta["hostname"] == "compute-123456"
