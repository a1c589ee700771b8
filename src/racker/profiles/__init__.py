"""Profiles and groups: what each machine boots and which Ignition config it gets (layer 1).

The web server (``racker.web``) calls only what is exported here; see
docs/profiles.md for the directory layout, selectors and template variables.
"""

from racker.profiles.catalog import Catalog, Profile, Rendered
from racker.profiles.context import (
    NodeFacts,
    PublicNic,
    RenderContext,
    RenderSettings,
    settings_from_config,
)
from racker.profiles.explain import explain
from racker.profiles.groups import Group, Match, NoMatch
from racker.profiles.ignition import check_ignition
from racker.profiles.loading import builtin_directory, load_catalog
from racker.profiles.rendering import TemplateError

__all__ = [
    "Catalog",
    "Group",
    "Match",
    "NoMatch",
    "NodeFacts",
    "Profile",
    "PublicNic",
    "RenderContext",
    "RenderSettings",
    "Rendered",
    "TemplateError",
    "builtin_directory",
    "check_ignition",
    "explain",
    "load_catalog",
    "settings_from_config",
]
