"""Request-body limits, as plain ASGI middleware outside everything else.

uvicorn bounds a request's headers but not its body: a client may send a huge
upload, or send one slowly, byte by byte, to hold a connection and a worker
forever (slow loris). This middleware gives every request body

* a size limit: a ``Content-Length`` above it is refused before any byte is
  read; a body without one (chunked) is refused as soon as it passes the limit;
* a deadline: the whole body must arrive within ``timeout_s`` of the request's
  start, however it trickles in.

Either way the client gets one JSON line (413 or 408) and the connection is
closed. The app behind may have been half-way through parsing the body when it
was cut off (and may have turned that into its own error response); whatever it
sends then is replaced by this answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _BodyRefused(Exception):
    """Raised inside the app's receive() once a body limit is broken."""


async def send_error(send: Send, status: int, message: str, *, close: bool = True) -> None:
    """Send one ``{"error": ...}`` JSON response."""
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimits:
    """Size limit and arrival deadline for every HTTP request body (see the module doc).

    Args:
        app: the ASGI app behind.
        max_body_bytes: the largest body accepted.
        timeout_s: seconds from the request's start by which its whole body must have arrived.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length == 0 or (length is None and not _chunked(scope)):
            # no body (HTTP/1.1: neither Content-Length nor chunked): nothing to limit, and a late
            # receive() (a response listening for the client going away) must not hit the deadline
            await self.app(scope, receive, send)
            return
        if length is not None and length > self.max_body_bytes:
            await send_error(send, 413, f"the request body is {length} bytes; the limit is {self.max_body_bytes} bytes")
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        received = 0
        refused: tuple[int, str] | None = None
        started = False
        body_done = False

        async def limited_receive() -> Message:
            nonlocal received, refused, body_done
            if body_done:
                # after the body, receive() only waits for a disconnect: no deadline applies
                return await receive()
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise asyncio.TimeoutError
                message = await asyncio.wait_for(receive(), remaining)
            except asyncio.TimeoutError:
                refused = (408, f"the request body did not arrive within {self.timeout_s:g} s")
                raise _BodyRefused from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    refused = (413, f"the request body passed the limit of {self.max_body_bytes} bytes")
                    raise _BodyRefused
                body_done = not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused is not None:
                # the app is answering a request this middleware cut off: answer for it, once
                if not started:
                    started = True
                    await send_error(send, *refused)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            # the app may wrap the refusal in its own error: any failure after one is the refusal
            if refused is None:
                raise
            if not started:
                await send_error(send, *refused)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _chunked(scope: Scope) -> bool:
    return any(name == b"transfer-encoding" and b"chunked" in value.lower() for name, value in scope.get("headers", []))
