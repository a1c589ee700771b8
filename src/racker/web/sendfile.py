"""An asset's body on the wire: ``os.sendfile`` driven by one writer callback.

aiohttp's ``FileResponse`` hands the body to asyncio's ``loop.sendfile``. On a selector loop
that waits until the transport's buffer is empty, pauses reading, and then, for every
wake-up of the socket, *removes* its writer callback, calls ``sendfile``, and *adds* the
writer again (``_sock_sendfile_native_impl``): two ``epoll_ctl`` calls and a new ``Handle``
per chunk, and on uvloop no sendfile at all (``NotImplementedError``: aiohttp falls back to
reading the file into memory chunk by chunk). nginx registers the socket once
(edge-triggered) and calls ``sendfile`` with large counts.

``send_file`` does the same within asyncio's public API: the socket's descriptor is
duplicated (``os.dup``: the same connection under a number no transport owns, so
``loop.add_writer`` accepts it, and the connection cannot close under us and its number be
reused while we write), ``sendfile`` is called with the whole remaining count (the kernel
takes as much as the socket buffer holds), and one writer callback stays registered until
the last byte: per wake-up one ``sendfile``. A partial send means the buffer is full, so
the callback returns without a second, failing call.

The file is never read into memory: a slow client holds at most its socket buffer, and one
that takes nothing for ``STALL_TIMEOUT`` (nginx's ``send_timeout``, 60 s) is cut off, so
clients that stop reading cannot hold connections and descriptors for ever. A file
that shrinks while it is sent (truncated in place) cannot give the bytes its Content-Length
promised: the connection is closed, as nginx does ("file was truncated"), and the client
sees a short body rather than a kept-alive connection out of step. A file replaced by a
rename is no problem: the open descriptor still reads the old one.
"""

from __future__ import annotations

import asyncio
import errno
import os
from typing import IO, Any

# sendfile(2) moves at most 0x7ffff000 bytes a call on Linux; ask for no more than 1 GiB.
_MAX_COUNT = 1 << 30
# A client that takes no byte for this long is dropped (nginx: send_timeout 60s).
STALL_TIMEOUT = 60.0


class FileShrank(ConnectionError):
    """The file ended before the promised byte count (it was truncated while being sent)."""


class ClientStalled(ConnectionError):
    """The client took no byte for ``STALL_TIMEOUT`` seconds."""


async def send_file(transport: asyncio.Transport, fobj: IO[Any], offset: int, count: int) -> int:
    """Send ``count`` bytes of ``fobj`` from ``offset`` on ``transport``'s socket; the bytes
    sent (``count``), or an exception: ``ConnectionError`` when the client went away or the
    file shrank (the connection is then closed), ``CancelledError`` when the handler is."""
    loop = asyncio.get_running_loop()
    if transport.is_closing():
        raise ConnectionResetError("the connection closed before the body")
    sock = transport.get_extra_info("socket")
    if sock is None or transport.get_write_buffer_size():
        # No socket to write to (a test transport), or bytes still queued ahead of the body
        # (the headers, when the socket buffer was full): asyncio's way, which waits for
        # the queue to empty, keeps the order.
        return await loop.sendfile(transport, fobj, offset, count)
    fd = os.dup(sock.fileno())
    try:
        sender = _Sender(loop, fd, fobj.fileno(), offset, count)
        sender.step()
        if not sender.done.done():
            loop.add_writer(fd, sender.step)
            sender.watch(loop, STALL_TIMEOUT)
            try:
                await sender.done
            finally:
                loop.remove_writer(fd)
                if sender.watchdog is not None:
                    sender.watchdog.cancel()
        return sender.done.result()
    except ConnectionError:
        transport.abort()
        raise
    finally:
        os.close(fd)


class _Sender:
    """One body in flight: where it is in the file and what is left."""

    __slots__ = ("done", "fd", "file_fd", "left", "offset", "total", "watchdog", "watched")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, fd: int, file_fd: int, offset: int, count: int
    ) -> None:
        self.fd, self.file_fd = fd, file_fd
        self.offset, self.left, self.total = offset, count, count
        self.done: asyncio.Future[int] = loop.create_future()
        self.watched = offset  # where the body was at the last watchdog check
        self.watchdog: asyncio.TimerHandle | None = None
        if count <= 0:
            self.done.set_result(0)

    def watch(self, loop: asyncio.AbstractEventLoop, period: float) -> None:
        """Look again in ``period`` seconds; fail the send if no byte went out since the
        last look (the first call only arms the watch)."""
        if self.done.done():
            return
        if self.watchdog is not None and self.offset == self.watched:
            self.done.set_exception(ClientStalled(f"the client took nothing for {period:g} s"))
            return
        self.watched = self.offset
        self.watchdog = loop.call_later(period, self.watch, loop, period)

    def step(self) -> None:
        """Send what the socket buffer takes (called once the socket is writable)."""
        if self.done.done():  # cancelled, or a wake-up already queued when it finished
            return
        while True:
            ask = min(self.left, _MAX_COUNT)
            try:
                sent = os.sendfile(self.fd, self.file_fd, self.offset, ask)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.done.set_exception(_connection_error(exc))
                return
            if sent == 0:
                missing = self.left
                self.done.set_exception(FileShrank(f"the file ended {missing} bytes short"))
                return
            self.offset += sent
            self.left -= sent
            if not self.left:
                self.done.set_result(self.total)
                return
            if sent < ask:  # the socket buffer is full: wait for the next wake-up
                return


def _connection_error(exc: OSError) -> ConnectionError:
    if isinstance(exc, ConnectionError):
        return exc
    error: ConnectionError
    if exc.errno in (errno.ENOTCONN, errno.ESHUTDOWN, errno.EBADF):
        error = ConnectionResetError(exc.errno, f"the client went away: {exc.strerror}")
    else:
        # Anything else (EIO reading the file...) is not the client's doing, but the
        # response cannot be finished either: a broken connection, with its cause.
        error = ConnectionAbortedError(exc.errno, f"sending the file failed: {exc.strerror}")
    error.__cause__ = exc
    return error
