"""`timbredb serve`: the JSON API and the web page over one store, read-only.

Layers: ``service`` (Explorer: the answers, no HTTP), ``projection`` (the 2-D
PCA map), ``app`` (FastAPI routes and errors), ``limits`` (body size and
deadline, as ASGI middleware), ``run`` (the socket and uvicorn), ``static/``
(the page: plain HTML, CSS and JS, no build step, nothing loaded from outside).
Importing this package imports no web framework.
"""

from timbredb.progress import WarnFn, ignore
from timbredb.server.service import Explorer, RequestError, ServeOptions


def serve(options: ServeOptions, announce: WarnFn = ignore, warn: WarnFn = ignore) -> None:
    """Run the server until interrupted (see ``timbredb.server.run.serve``)."""
    from timbredb.server.run import serve as _serve

    _serve(options, announce=announce, warn=warn)


__all__ = ["Explorer", "RequestError", "ServeOptions", "serve"]
