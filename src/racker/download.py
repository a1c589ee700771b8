"""racker's one downloader: the Flatcar mirror and racker's own releases both fetch through it.

``urllib`` (http, https and file URLs; each caller decides which schemes it accepts), streamed
to the destination in chunks, resumed with a Range request where the caller asks for it, and
retried when a connection drops. It knows nothing about what it fetches: verification (hashes,
signatures) and the error a user sees (with the hint that fits the command) are the callers'.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from racker import __version__

Opener = Callable[[urllib.request.Request, float], http.client.HTTPResponse]
CHUNK = 1 << 20
RETRIES = 3


class DownloadFailed(Exception):
    """A download that did not complete: the URL, why, and the HTTP status if one came back."""

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.status = status


class Progress:
    """Progress reporting; the default reports nothing (the CLI's shows bars)."""

    def start(self, name: str, total: int | None, done: int) -> None:
        """A download of ``name`` begins (``done`` bytes already there from a resume)."""

    def advance(self, count: int) -> None:
        """``count`` more bytes arrived."""

    def note(self, message: str) -> None:
        """A one-line status message (verified, skipped, resumed)."""


def urlopen(request: urllib.request.Request, timeout: float) -> http.client.HTTPResponse:
    return urllib.request.urlopen(request, timeout=timeout)  # type: ignore[no-any-return]  # noqa: S310 - callers check the scheme


class Downloader:
    def __init__(
        self,
        opener: Opener = urlopen,
        timeout: float = 30.0,
        progress: Progress | None = None,
        retries: int = RETRIES,
    ) -> None:
        self.opener = opener
        self.timeout = timeout
        self.progress = progress or Progress()
        self.retries = retries

    def _request(self, url: str) -> urllib.request.Request:
        return urllib.request.Request(url, headers={"User-Agent": f"racker/{__version__}"})  # noqa: S310 - callers check the scheme

    def text(self, url: str, limit: int = 1 << 20) -> str:
        """A small text document (an index, a version file); refused when over ``limit``."""
        try:
            with self.opener(self._request(url), self.timeout) as response:
                data = response.read(limit + 1)
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            raise _failed(url, exc) from None
        if len(data) > limit:
            raise DownloadFailed(url, f"larger than {limit} bytes")
        return str(data.decode("utf-8", "replace"))

    def fetch(self, url: str, dest: Path, *, resume: bool = False, quiet: bool = False) -> None:
        """Download ``url`` to ``dest``; with ``resume``, append from ``dest``'s current size
        (a dropped connection keeps what arrived); without, a retry starts over."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        last: BaseException | None = None
        for _attempt in range(self.retries):
            try:
                self._fetch_once(url, dest, resume=resume, quiet=quiet)
                return
            except urllib.error.HTTPError as exc:
                raise _failed(url, exc) from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                last = exc
                if not resume:
                    dest.unlink(missing_ok=True)
            except ValueError as exc:  # not a URL urllib can open
                raise _failed(url, exc) from None
        assert last is not None
        raise _failed(url, last)

    def _fetch_once(self, url: str, dest: Path, *, resume: bool, quiet: bool) -> None:
        have = dest.stat().st_size if resume and dest.exists() else 0
        request = self._request(url)
        if have:
            request.add_header("Range", f"bytes={have}-")
        try:
            response = self.opener(request, self.timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416 and have:  # RFC 9110 15.5.17: we already have it all
                return
            raise
        with response:
            if have and getattr(response, "status", 200) != 206:
                have = 0  # the server ignored the Range header: start over
            length = response.headers.get("Content-Length") if response.headers else None
            total = have + int(length) if length and length.isdigit() else None
            if not quiet:
                self.progress.start(dest.name.removesuffix(".part"), total, have)
                if have:
                    self.progress.note(f"resuming {dest.name} at byte {have}")
            with dest.open("ab" if have else "wb") as out:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    if not quiet:
                        self.progress.advance(len(chunk))
        if total is not None and dest.stat().st_size != total:
            raise http.client.IncompleteRead(b"", total - dest.stat().st_size)


def _failed(url: str, exc: BaseException) -> DownloadFailed:
    if isinstance(exc, urllib.error.HTTPError):
        return DownloadFailed(url, f"HTTP {exc.code} {exc.reason}", exc.code)
    reason = getattr(exc, "reason", None) or exc
    return DownloadFailed(url, f"download failed: {reason}")
