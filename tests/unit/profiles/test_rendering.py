"""Templates.render_all (templates rendered with one shared copy of the variables; ``render``
is the one-template case) must give what jinja2's own ``Template.render`` gives, and report
errors with the failing template's file and line. ``boot_script``, plain Python, must give
what the jinja2 template it replaced gives."""

from __future__ import annotations

import gc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from racker.profiles import load_catalog
from racker.profiles.catalog import boot_script
from racker.profiles.rendering import TemplateError, Templates
from tests.unit.profiles.helpers import SETTINGS, context, facts

PIECES = [
    "{{ assets_url }}/flatcar/{{ flatcar.version }}/kernel",
    "{% set x = mac | upper %}{{ x }}-{{ range(3) | list | length }}",
    "{{ query.get('serial', 'none') }} {{ 'yes' if installed else 'no' }}",
    "plain text",
    "{{ x | default('x did not leak from the piece before') }}",
]
VARIABLES = {
    "assets_url": "http://10.0.0.1:8080/assets",
    "flatcar": {"version": "4081.2.0"},
    "mac": "52:54:00:aa:00:01",
    "query": {"serial": "SN1"},
    "installed": False,
}


def test_render_all_equals_jinja2s_own_render() -> None:
    t = Templates(None)
    templates = [t.inline(text, "profiles/p.yaml", 5 + i) for i, text in enumerate(PIECES)]
    alone = [tpl.render(VARIABLES) for tpl in templates]  # jinja2 itself: the reference
    assert t.render_all(templates, VARIABLES, "boot section") == alone
    assert [t.render(tpl, VARIABLES, "boot section") for tpl in templates] == alone
    assert alone[1] == "52:54:00:AA:00:01-3"
    assert alone[4] == "x did not leak from the piece before"
    assert t.render_all([], VARIABLES, "nothing") == []


def test_render_all_shares_a_context_only_between_templates_that_leave_it_alone() -> None:
    t = Templates(None)
    made = []
    context_class = t.env.context_class

    def counting(*args: object, **kwargs: object) -> object:
        made.append(args[2])  # the template name
        return context_class(*args, **kwargs)  # type: ignore[arg-type]

    t.env.context_class = counting  # type: ignore[assignment]
    pieces = ["{{ mac }}", "k", "{% set x = 1 %}{{ x }}", "{{ x | default('no x') }}", "y"]
    templates = [t.inline(text, "profiles/p.yaml", 1 + i) for i, text in enumerate(pieces)]
    assert t.render_all(templates, VARIABLES, "boot section") == [
        "52:54:00:aa:00:01", "k", "1", "no x", "y",
    ]  # fmt: skip
    # One context for the first three (the set writes to it), a new one after the set.
    assert made == ["profiles/p.yaml:1", "profiles/p.yaml:4"]


def test_render_all_reports_the_failing_piece_with_its_file_and_line() -> None:
    t = Templates(None)
    good = t.inline("{{ mac }}", "profiles/p.yaml", 3)
    bad = t.inline("{{ no_such_variable }}", "profiles/p.yaml", 7)
    with pytest.raises(TemplateError) as alone:
        t.render(bad, VARIABLES, "boot section of profile p")
    with pytest.raises(TemplateError) as shared:
        t.render_all([good, bad], VARIABLES, "boot section of profile p")
    assert shared.value.problem == alone.value.problem
    assert shared.value.problem.file == "profiles/p.yaml"
    assert shared.value.problem.line == 7
    assert "no_such_variable" in shared.value.problem.message


def test_templates_get_plain_dict_globals() -> None:
    # The speed-up behind render_all: no ChainMap copied per render.
    t = Templates(None)
    template = t.inline("{{ range(2) | list }}", "p.yaml", 1)
    assert type(template.globals) is dict
    assert template.globals == dict(t.env.make_globals(None))


# The jinja2 template racker's boot script was rendered with: the reference for boot_script.
BOOT_SCRIPT = """#!ipxe
# racker: group {{ group }}, profile {{ profile }}
kernel {{ kernel }}{% for name in initrd_names %} initrd={{ name }}{% endfor %} {{ args }}
{% for url in initrds %}initrd {{ url }}
{% endfor %}boot
"""
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@given(
    group=TEXT,
    profile=TEXT,
    kernel=TEXT,
    initrds=st.lists(TEXT, max_size=3),
    names=st.lists(TEXT, max_size=3),
    args=TEXT,
)
def test_boot_script_equals_its_jinja2_reference(
    group: str, profile: str, kernel: str, initrds: list[str], names: list[str], args: str
) -> None:
    templates = Templates(None)
    reference = templates.inline(BOOT_SCRIPT, "<boot script>", 1)
    expected = templates.render(
        reference,
        {"group": group, "profile": profile, "kernel": kernel, "initrds": initrds,
         "initrd_names": names, "args": args},
        "boot script",
    )  # fmt: skip
    assert boot_script(group, profile, kernel, initrds, names, args) == expected


def test_renders_leave_no_cyclic_garbage() -> None:
    # Cyclic garbage waits for the collector, which then pauses every request being served;
    # the template functions (file_data_url, profile_ignition...) once made a cycle per render.
    catalog = load_catalog(None, SETTINGS)
    ctx = context()
    catalog.render_ignition(facts(), ctx)  # first renders compile and cache the templates
    gc.collect()
    gc.disable()
    try:
        for _ in range(10):
            catalog.render_ipxe(facts(), ctx)
            catalog.render_ignition(facts(), ctx)
            catalog.render_metadata(facts(), ctx)
        found = gc.collect()
    finally:
        gc.enable()
    assert found == 0
