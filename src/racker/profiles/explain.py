"""``racker render MAC``: which group matched and why, then what the node would get."""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Callable
from typing import Any

from racker.profiles.catalog import Catalog
from racker.profiles.context import NodeFacts, RenderContext
from racker.profiles.groups import NoMatch

# Ignition's own validator: its problems with a config ([]: none), None where it is missing.
Validate = Callable[[dict[str, Any]], "list[str] | None"]


def explain(
    catalog: Catalog,
    facts: NodeFacts,
    ctx: RenderContext,
    raw_json: bool = False,
    validate: Validate | None = None,
) -> str:
    """Human-readable selection, iPXE script and Ignition for one machine: the Ignition config
    with every file's data URL decoded below it (``raw_json``: the config as it is served).
    ``validate`` is asked about the config and every config embedded in it.

    Raises ``NoMatch`` when no group matches and ``TemplateError`` when a template fails.
    """
    match = catalog.select(facts, ctx)
    node = ctx.node
    who = (
        f"{facts.mac} ({node.hostname}, type {node.node_type}"
        if node
        else f"{facts.mac} (not in inventory"
    )
    who += f", role {ctx.role}" if ctx.role else ""
    who += ", installed)" if ctx.installed else ")"
    lines = [f"# machine: {who}", f"# group: {match.group.id}", "# why:"]
    lines += [f"#   {reason}" for reason in match.why]
    if ctx.settings.flatcar_version == "current":
        lines.append(
            "# note: no Flatcar version in the asset mirror yet (install.version is current):"
            " run `racker assets fetch flatcar`"
        )
    if catalog.ipxe_reads_request is None:
        lines.append("# iPXE scripts: rendered ahead (they read nothing of a request but the MAC)")
    else:
        lines.append(f"# iPXE scripts: rendered on each request: {catalog.ipxe_reads_request}")
    ipxe, ignition = catalog.render_match(match, facts, ctx)
    if ignition is not None:
        lines += _validation(ignition, validate)
    lines += ["", "## iPXE script", ipxe.rstrip("\n"), "", "## Ignition"]
    if ignition is None:
        lines.append(f"(profile {match.profile.id!r} has no Ignition config)")
    elif raw_json:
        lines.append(json.dumps(ignition, indent=2, sort_keys=True))
    else:
        lines.append(json.dumps(_without_data(ignition), indent=2, sort_keys=True))
        lines += ["", "## Ignition files and units, decoded", files_view(ignition).rstrip("\n")]
    return "\n".join(lines) + "\n"


def _validation(ignition: dict[str, Any], validate: Validate | None) -> list[str]:
    if validate is None:
        return []
    out = []
    for where, config in [("the config", ignition), *embedded_configs(ignition)]:
        problems = validate(config)
        if problems is None:
            return ["# ignition-validate: not installed (Debian: apt-get install ignition)"]
        verdict = "valid" if not problems else "INVALID: " + "; ".join(problems)
        out.append(f"# ignition-validate, {where}: {verdict}")
    return out


def embedded_configs(config: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Every Ignition config written as a ``.ign`` file by ``config``, recursively."""
    found = []
    for f in config.get("storage", {}).get("files", []):
        source = f.get("contents", {}).get("source", "")
        if f.get("path", "").endswith(".ign") and source.startswith("data:"):
            inner = json.loads(decode_data_url(source))
            found.append((prefix + f["path"], inner))
            found += embedded_configs(inner, prefix=f"{prefix}{f['path']} -> ")
    return found


def decode_data_url(source: str) -> bytes:
    """The bytes of an RFC 2397 ``data:`` URL (base64 or percent-encoded)."""
    header, _, payload = source[len("data:") :].partition(",")
    if header.endswith(";base64"):
        return base64.b64decode(payload)
    return urllib.parse.unquote_to_bytes(payload)


def files_view(config: dict[str, Any], prefix: str = "") -> str:
    """Every file of an Ignition config decoded, an embedded ``.ign`` followed recursively,
    then every systemd unit: what a person reviews (and what the golden tests compare)."""
    out = []
    for f in config.get("storage", {}).get("files", []):
        mode = f"0o{f['mode']:o}" if "mode" in f else "default"
        source = f.get("contents", {}).get("source", "")
        out.append(f"===== {prefix}{f['path']} (mode {mode}) =====")
        if not source.startswith("data:"):
            out.append(f"(fetched from {source})" if source else "(empty)")
            continue
        raw = decode_data_url(source)
        if f["path"].endswith(".ign"):
            inner = json.loads(raw)
            out.append(json.dumps(_without_data(inner), indent=2, sort_keys=True))
            out.append(files_view(inner, prefix=f"{f['path']} -> ").rstrip("\n"))
        else:
            out.append(raw.decode("utf-8", "replace").rstrip("\n"))
    for unit in config.get("systemd", {}).get("units", []):
        out.append(f"===== {prefix}unit {unit['name']} (enabled={unit.get('enabled')}) =====")
        out.append(unit.get("contents", "").rstrip("\n"))
    return "\n".join(out) + "\n"


def _without_data(config: Any) -> Any:
    """The config with each data URL replaced by a note (its content is shown decoded)."""
    if isinstance(config, dict):
        return {k: _without_data(v) for k, v in config.items()}
    if isinstance(config, list):
        return [_without_data(v) for v in config]
    if isinstance(config, str) and config.startswith("data:"):
        return f"(data URL, {len(decode_data_url(config))} bytes: decoded below)"
    return config


__all__ = ["NoMatch", "decode_data_url", "explain", "files_view"]
