"""The first stages over HTTP, for UEFI HTTP Boot (layer 3).

Firmware that boots by HTTP (option 60 ``HTTPClient``, UEFI spec §24.7) is handed a URL for
the loader TFTP would have sent (``http://SERVER:PORT/ipxe.efi``), and fetches it here: EDK2
sends a HEAD for the size, then a GET. The name is looked up exactly as TFTP looks it up
(``racker.tftp.files.FileRoots``: ``tftp.root`` first, then ``tftp.ipxe_dir``; no ``..``, no
symlink out of an operator's root, regular files only), so a site that overrides a loader for
TFTP overrides it for HTTP too. aiohttp's ``FileResponse`` answers HEAD and Range.

The boot policy applies as it does to TFTP (``may_fetch(client_ip)``, racker serve's
``NodeDirectory.may_fetch_boot_files``): a node of the rack whose boot action is not PXE (it
is installed and boots from disk) gets 403 instead of a loader, whichever way it asks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from racker.tftp.admission import FileRefused
from racker.tftp.files import FileRoots
from racker.web.handlers import AssetResponse

log = logging.getLogger("racker.http")


class LoaderFiles:
    """``GET /NAME``: the loader ``NAME`` from the TFTP roots (the route table's last entry)."""

    def __init__(self, roots: FileRoots, may_fetch: Callable[[str], bool] | None = None) -> None:
        self.roots = roots
        self.may_fetch = may_fetch

    def _allowed(self, ip: str) -> bool:
        if self.may_fetch is None:
            return True
        try:
            return self.may_fetch(ip)
        except Exception:  # a failing policy refuses, as TFTP's does
            log.exception("HTTP loader: boot policy failed for %s; refusing", ip)
            return False

    async def serve(self, request: web.Request) -> web.StreamResponse:
        # Percent-decoded by the router (%2e%2e arrives as ".."): the TFTP name rules apply to
        # the decoded text, as they do to a name in a read request.
        name = request.match_info["name"]
        if not self._allowed(request.remote or ""):
            log.debug("HTTP loader %s refused to %s: boot policy", name, request.remote)
            return web.Response(status=403, text="racker: no boot files for this machine\n")
        try:
            path = self.roots.resolve(name)
        except FileRefused as exc:
            log.debug("HTTP loader %s refused: %s", request.rel_url.raw_path, exc)
            return web.Response(status=404, text="racker: no such file\n")
        return AssetResponse(path)
