"""Starting `timbredb serve`: the store check, the listening socket, uvicorn."""

from __future__ import annotations

import ipaddress
import json
import signal
import socket
import threading
from typing import Any

from timbredb.errors import TimbreDBError, first_line
from timbredb.progress import WarnFn, ignore
from timbredb.server.service import Explorer, ServeOptions

#: a request's headers must have arrived this long after the connection opened (or the last response)
HEADER_TIMEOUT_S = 10.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: room for the form fields beside the uploaded file in one request body
FORM_SLACK_BYTES = 1024 * 1024


def _needs_extra() -> TimbreDBError:
    return TimbreDBError("timbredb serve needs the serve extra: pip install 'timbredb[serve]'")


def _protocol_class(header_timeout_s: float) -> Any:
    """uvicorn's h11 protocol plus a deadline for each request's headers.

    uvicorn times out idle keep-alive connections but not a request whose headers
    trickle in (it stops the keep-alive timer at the first byte), so a slow-loris
    client could hold connections open forever. The body has its own deadline
    (``BodyLimits``).
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    body = json.dumps({"error": f"the request headers did not arrive within {header_timeout_s:g} s"}).encode()
    timeout_response = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode() + body
    )

    class GuardedH11Protocol(H11Protocol):
        _header_timer: Any = None
        _armed_cycle: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._armed_cycle = self.cycle
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_timed_out)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def handle_events(self) -> None:
            super().handle_events()
            if self._header_timer is not None and self.cycle is not self._armed_cycle:
                self._disarm()  # a request's headers are complete: its body has BodyLimits' deadline

        def on_response_complete(self) -> None:
            self._arm()  # waiting for the next request's headers (uvicorn's keep-alive timer covers silence)
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _headers_timed_out(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.write(timeout_response)
                self.transport.close()

    return GuardedH11Protocol


def _listen(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TimbreDBError(f"cannot listen on {host}:{port}: {first_line(exc)}") from exc
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise TimbreDBError(f"cannot listen on {host}:{port}: {exc.strerror or first_line(exc)}") from exc
    # listening before the "listening on" line: a client that reads it can connect at once
    # (connections wait in the backlog until uvicorn accepts them)
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(options: ServeOptions, announce: WarnFn = ignore, warn: WarnFn = ignore) -> None:
    """Serve until interrupted (SIGINT/SIGTERM stop it cleanly).

    Args:
        announce: receives the "listening on" line (with the real port when ``port`` is 0).
        warn: receives warnings (a non-loopback host; describe's out-of-vocabulary words).

    Raises:
        TimbreDBError: the extra is not installed, the store cannot be served, or the address is taken.
    """
    import importlib.util

    # python-multipart (FastAPI's form parser) is imported as python_multipart, older releases as multipart
    if not any(importlib.util.find_spec(m) for m in ("python_multipart", "multipart")):
        raise _needs_extra()
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise _needs_extra() from exc
    from timbredb.server.app import create_app
    from timbredb.server.limits import BodyLimits

    explorer = Explorer(options, warn=warn)
    explorer.preload()
    app = BodyLimits(create_app(explorer), options.max_upload_bytes + FORM_SLACK_BYTES, options.upload_timeout_s)
    if not is_loopback(options.host):
        warn(f"timbredb serve: listening on {options.host}, not a loopback address: anyone who can reach it "
             "can read the store")
    sock = _listen(options.host, options.port)
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app, http=_protocol_class(min(HEADER_TIMEOUT_S, options.upload_timeout_s)), lifespan="off",
        log_level="info" if options.access_log else "warning", access_log=options.access_log, timeout_keep_alive=5,
        server_header=False,
    )
    shown = f"[{host}]" if ":" in host else host
    announce(f"timbredb serve: listening on http://{shown}:{port}/ (store {options.db}, read-only; "
             f"API schema at /openapi.json)")
    stopped: list[int] = []
    # uvicorn stops gracefully on these and then re-raises them with the handlers it found:
    # these record the stop, so a SIGTERM or Ctrl-C ends `serve` normally (exit 0)
    main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} if main else {}
    for sig in previous:
        signal.signal(sig, lambda signum, frame: stopped.append(signum))
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
        explorer.close()
