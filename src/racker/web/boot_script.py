"""The static first-stage iPXE script served at ``/boot.ipxe``.

DHCP points every iPXE at this one URL. It asks for the machine's own script at ``/ipxe``,
passing what iPXE knows about the machine, and retries with a growing delay when the fetch fails:
a restarting racker or a dropped packet must not leave the machine at "no bootable device".

iPXE has no "less than", so the back-off is a ladder of ``iseq`` steps (1, 2, 4, 8, 16, then
30 s forever). ``:uristring`` percent-encodes values that may hold spaces or ``&`` (serial
numbers, host names); ``${mac:hexhyp}`` is the MAC of the interface iPXE booted from.
A chained script that finishes without booting (e.g. the "installed" profile's ``exit`` to boot
from disk) returns success, and this script exits too instead of fetching again.
"""

from __future__ import annotations

# What iPXE knows about the machine, passed to /ipxe as the query (NodeFacts).
_FACTS = "&".join(
    (
        "mac=${mac:hexhyp}",
        "uuid=${uuid}",
        "serial=${serial:uristring}",
        "hostname=${hostname:uristring}",
        "platform=${platform}",
        "buildarch=${buildarch}",
    )
)

_TEMPLATE = """\
#!ipxe
# racker first stage: fetch this machine's own boot script, retrying with back-off.
set racker-delay 1
:racker-fetch
chain --autofree {server_url}/ipxe?{facts} && exit || goto racker-retry
:racker-retry
echo racker: fetching {server_url}/ipxe failed (${{errno}}), retry in ${{racker-delay}} s
sleep ${{racker-delay}}
iseq ${{racker-delay}} 1 && set racker-delay 2 && goto racker-fetch ||
iseq ${{racker-delay}} 2 && set racker-delay 4 && goto racker-fetch ||
iseq ${{racker-delay}} 4 && set racker-delay 8 && goto racker-fetch ||
iseq ${{racker-delay}} 8 && set racker-delay 16 && goto racker-fetch ||
set racker-delay 30
goto racker-fetch
"""


def boot_script(server_url: str) -> str:
    """The ``/boot.ipxe`` text for a racker reachable at ``server_url`` (no trailing slash)."""
    return _TEMPLATE.format(server_url=server_url.rstrip("/"), facts=_FACTS)
