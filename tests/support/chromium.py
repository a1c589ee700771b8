"""Headless Chromium driven over the Chrome DevTools Protocol (CDP), for the rack page's tests.

``Chromium`` starts Debian's ``chromium`` (``--headless=new``, its own profile directory,
``--remote-debugging-port=0``), reads the port it chose from ``DevToolsActivePort`` and talks
CDP over aiohttp's websocket client. With ``netns`` the browser runs in that network namespace
(``ip netns exec``) and the websocket is opened from a thread that entered the same namespace
(a socket belongs to the namespace it was created in), so the browser reaches a ``racker serve``
on the test's isolated link and nothing else.

The API is synchronous (the serve tests are): CDP runs on an event loop in a thread of its own.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import itertools
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from tests.support.netns import entered

T = TypeVar("T")
BINARY = "chromium"
START_TIMEOUT = 60.0  # a hang guard: a first start of a cold profile takes a few seconds


class BrowserError(RuntimeError):
    """CDP answered with an error, or the browser did not start."""


def available() -> bool:
    return shutil.which(BINARY) is not None


class Chromium:
    def __init__(
        self, profile: Path, netns: str | None = None, size: tuple[int, int] = (1440, 900)
    ) -> None:
        self.profile = profile
        self.netns = netns
        self.size = size
        self.log = profile.with_name(profile.name + ".log")
        self.proc: subprocess.Popen[bytes] | None = None
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: asyncio.Queue[dict[str, Any]] | None = None
        self._reader: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Chromium:
        self.profile.mkdir(parents=True, exist_ok=True)
        command = [
            BINARY,
            "--headless=new",
            "--no-sandbox",  # root in a test namespace; nothing untrusted is opened
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--remote-debugging-port=0",
            f"--user-data-dir={self.profile}",
            f"--window-size={self.size[0]},{self.size[1]}",
            "about:blank",
        ]
        if self.netns is not None:
            command = ["ip", "netns", "exec", self.netns, *command]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            port = self._port()
            started = threading.Event()
            self._thread = threading.Thread(target=self._run_loop, args=(started,), daemon=True)
            self._thread.start()
            started.wait()
            self._submit(self._connect(port))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            with contextlib.suppress(Exception):
                self._submit(self._disconnect(), timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None
        if not self._loop.is_running():
            self._loop.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None

    def _port(self) -> int:
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT
        while not (marker.exists() and marker.read_text().strip()):
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise BrowserError(f"chromium exited: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise BrowserError(f"chromium did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        return int(marker.read_text().split()[0])

    def _run_loop(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        with entered(self.netns) if self.netns is not None else contextlib.nullcontext():
            started.set()
            self._loop.run_forever()

    def _submit(self, coro: Coroutine[Any, Any, T], timeout: float = START_TIMEOUT) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    async def _connect(self, port: int) -> None:
        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://127.0.0.1:{port}/json/list") as resp:
            targets = await resp.json()
        page = next(t for t in targets if t.get("type") == "page")
        self._ws = await self._session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        self._events = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())
        await self._call("Page.enable", {})
        await self._call("Runtime.enable", {})

    async def _disconnect(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()

    async def _read(self) -> None:
        assert self._ws is not None and self._events is not None
        async for msg in self._ws:
            data = json.loads(msg.data)
            if "id" in data:
                future = self._waiting.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                self._events.put_nowait(data)

    async def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self._ws is not None
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        await self._ws.send_str(json.dumps({"id": ident, "method": method, "params": params}))
        answer = await future
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def _navigate(self, url: str) -> None:
        assert self._events is not None
        while not self._events.empty():
            self._events.get_nowait()
        result = await self._call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"{url}: {result['errorText']}")
        while (await self._events.get()).get("method") != "Page.loadEventFired":
            pass

    # -- what tests use -------------------------------------------------------------------

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self._submit(self._call(method, params))

    def navigate(self, url: str) -> None:
        """Open ``url`` and wait for its load event."""
        self._submit(self._navigate(url))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """Poll ``expression`` until it is truthy; its value. ``timeout`` is a hang guard."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} still {value!r} after {timeout} s")
            time.sleep(0.05)

    def dom(self) -> str:
        return str(self.evaluate("document.documentElement.outerHTML"))

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", **params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


@contextlib.contextmanager
def browser(profile: Path, netns: str | None = None) -> Iterator[Chromium]:
    with Chromium(profile, netns) as made:
        yield made
