"""Ignition's own validator over the profiles, before the boot stack serves them.

At start and on SIGHUP, each profile's Ignition is rendered for the first inventory node that
selects it (installing, and installed) and handed to ``ignition-validate`` with every config it
embeds, so an operator's template that Ignition would reject stops ``racker serve`` (or the
reload, which keeps the running configuration) instead of a node's first boot. Nothing is
checked where the validator is not installed: racker's own check runs on every render anyway.
"""

from __future__ import annotations

from racker.app.preview import render_context
from racker.errors import Problem
from racker.ignition_validate import available, ignition_problems
from racker.profiles import Catalog, NodeFacts, NoMatch, RenderSettings, TemplateError
from racker.profiles.explain import embedded_configs
from racker.rack.loading import Rack


def validate_profiles(catalog: Catalog, rack: Rack, settings: RenderSettings, url: str) -> int:
    """Raise ``TemplateError`` naming the profile when Ignition rejects what it renders;
    return how many renderings were checked (0 without the validator)."""
    if not available():
        return 0
    inventory = rack.oem.inventory
    seen: set[tuple[str, bool]] = set()
    for node in inventory.nodes:
        for installed in (False, True):
            ctx = render_context(
                node=node,
                management=node is inventory.management,
                state=None,
                installed=installed,
                address=None,
                server_url=url,
                settings=settings,
                token="TOKEN",  # noqa: S106 - a placeholder: nothing is served from this
            )
            facts = NodeFacts(mac=node.primary_mac, platform="efi", buildarch="x86_64")
            try:
                match = catalog.select(facts, ctx)
            except NoMatch:
                continue
            profile = match.profile
            if profile.ignition is None or (profile.id, installed) in seen:
                continue
            seen.add((profile.id, installed))
            config = catalog.render_ignition(facts, ctx)
            for where, each in [("its config", config), *embedded_configs(config)]:
                problems = ignition_problems(each)
                if problems:
                    raise TemplateError(
                        Problem(
                            profile.ignition.filename or profile.source,
                            None,
                            f"profile {profile.id}'s Ignition ({where}, rendered for "
                            f"{node.hostname}) fails ignition-validate: {'; '.join(problems)}",
                            f"fix the template; 'racker render {node.primary_mac}' shows it",
                        )
                    )
    return len(seen)
