"""The HTTP layer of `timbredb serve`: FastAPI routes over ``Explorer``, errors as one JSON line.

Every route parses its parameters, runs one ``Explorer`` call on a worker thread
(CPU work never runs on the event loop; at most ``threads`` run at once) and
returns JSON rendered by ``timbredb.formatting.to_json``, the renderer behind
`--format json`, so numbers print exactly as the CLI prints them. Every error
is ``{"error": "<one line>"}`` with a 4xx status for bad input (see
``status_of``); a 500 means a bug in timbredb.
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Callable
from importlib import resources
from typing import Annotated, Any, Literal, TypeVar

import anyio
import anyio.to_thread
from fastapi import FastAPI, File, Form, Path, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from timbredb import __version__
from timbredb.errors import (
    AudioError,
    NotFoundError,
    StoreError,
    TimbreDBError,
    first_line,
)
from timbredb.formatting import to_json
from timbredb.server.service import Explorer, RequestError, Upload
from timbredb.vocabularies import BARE

T = TypeVar("T")

#: the page may load nothing from anywhere but this server (it works offline by construction)
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
SHA_PATTERN = r"^[0-9a-f]{64}$"

# parameter types at module level: FastAPI resolves the (postponed) annotations in this module's namespace
ModelParam = Annotated[list[str] | None, Query(description="Model (space label); repeat or comma-separate for several.")]
KParam = Annotated[int, Query(ge=1, description="How many results per model.")]
VocabParam = Annotated[str | None, Query(description="Vocabulary name (built-in or stored; default: describe's).")]
PromptParam = Annotated[str, Query(description="Prompt template with '{}' for the word.")]
ShaParam = Annotated[str, Path(pattern=SHA_PATTERN, description="A clip's content hash (64 hex digits).")]

DESCRIPTION = """\
Nearest descriptors and nearest stored clips over HTTP, read-only on one timbredb store.

Every error is one JSON object `{"error": "..."}`: 400 bad parameter (unknown model or vocabulary,
a model without text vectors, bad k or template), 404 unknown clip or space, 405 wrong method,
408 the request body did not arrive in time, 413 upload too large or too long, 415 not decodable
audio, 422 decodable but unusable audio (empty, silent, non-finite, too short for the model),
503 the store cannot be read now (another process is writing it, or it needs `timbredb check`).
"""


def status_of(exc: TimbreDBError) -> int:
    """The HTTP status of a library error."""
    if isinstance(exc, RequestError):
        return exc.status
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, AudioError):
        return 422
    if isinstance(exc, StoreError):
        return 503
    return 400


def json_response(payload: Any, status: int = 200, warnings: list[str] | None = None) -> Response:
    headers = {}
    if warnings:
        # the body is exactly describe's objects; warnings describe printed to stderr go in a header
        text = " | ".join(dict.fromkeys(" ".join(w.split()) for w in warnings))[:4000]
        # header values are latin-1 on the wire: other characters are escaped, not a 500
        headers["X-Timbredb-Warning"] = text.encode("ascii", "backslashreplace").decode("ascii")
    return Response(to_json(payload), status_code=status, media_type="application/json", headers=headers)


def error_response(status: int, message: str) -> Response:
    return json_response({"error": first_line(Exception(message))}, status)


def _models(values: list[str] | None) -> list[str]:
    """model=a&model=b or model=a,b."""
    return [m.strip() for v in values or [] for m in v.split(",") if m.strip()]


def create_app(explorer: Explorer) -> FastAPI:
    """The FastAPI app serving ``explorer`` (the page at /, the API under /api, OpenAPI at /openapi.json)."""
    limiter = anyio.CapacityLimiter(explorer.options.threads)

    async def work(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=limiter)

    extra: dict[str, Any] = {}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        # FastAPI's native OpenTelemetry: off (nothing is ever sent anywhere)
        extra["telemetry"] = {"tracing": False, "metrics": False, "logs": False}
    # the interactive docs pages load their scripts from a CDN: the schema itself is served instead
    app = FastAPI(title="timbredb", version=__version__, description=DESCRIPTION, docs_url=None, redoc_url=None,
                  **extra)

    @app.exception_handler(TimbreDBError)
    async def _timbredb_error(request: Request, exc: TimbreDBError) -> Response:
        return error_response(status_of(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        if not errors:
            return error_response(400, "bad request")
        e = errors[0]
        where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path"))
        return error_response(400, f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg", "invalid")))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        messages = {404: f"not found: {request.url.path}", 405: f"method {request.method} not allowed here"}
        detail = exc.detail if isinstance(exc.detail, str) and exc.status_code not in messages else None
        return error_response(exc.status_code, detail or messages.get(exc.status_code, "bad request"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        if type(exc).__module__.split(".")[0] in ("duckdb", "_duckdb"):
            return error_response(503, f"database error: {first_line(exc)}")
        return error_response(500, f"internal error (a bug in timbredb): {type(exc).__name__}: {first_line(exc)}")

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if not request.url.path.startswith("/api/"):
            response.headers.setdefault("Content-Security-Policy", CSP)
        return response

    # ---------------------------------------------------------------- page
    static = resources.files("timbredb.server") / "static"

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse((static / "index.html").read_text(encoding="utf-8"))

    app.mount("/static", StaticFiles(packages=[("timbredb.server", "static")]), name="static")

    # ---------------------------------------------------------------- API
    @app.get("/api/healthz", summary="Liveness and what the store holds")
    async def healthz() -> Response:
        return json_response(await work(explorer.health))

    @app.get("/api/spaces", summary="The store's embedding spaces")
    async def spaces() -> Response:
        """Every space: label (`model`), model id, checkpoint, policy, dim, modalities, vector counts, and
        whether this server can embed uploads in it (`usable`, else `reason`)."""
        return json_response(await work(explorer.spaces))

    @app.get("/api/vocabularies", summary="The vocabularies a request may name")
    async def vocabularies() -> Response:
        return json_response(await work(explorer.vocabularies))

    @app.post("/api/describe", summary="Nearest descriptors of an uploaded audio file")
    async def describe(
        file: Annotated[UploadFile, File(description="One audio file (checked by decoding, not by its extension).")],
        model: Annotated[list[str] | None, Form(description="Text-capable model(s); repeat or comma-separate. "
                                                             "Default: describe's default model.")] = None,
        k: Annotated[int, Form(ge=1, description="Descriptors per model.")] = 5,
        vocabulary: Annotated[str | None, Form(description="Vocabulary name (default: describe's).")] = None,
        prompt: Annotated[str, Form(description="Prompt template with '{}' for the word.")] = BARE,
        clips: Annotated[int, Form(ge=0, description="Also list this many nearest stored clips.")] = 0,
        rank: Annotated[Literal["calibrated", "cosine"], Form(
            description="Rank by the calibrated score (default) or the raw cosine, as `describe --rank`.")] = "calibrated",
    ) -> Response:
        """Exactly the objects `timbredb describe FILE --format json` prints (one per model, in the order
        asked; `file` is the upload's file name), with `similar_clips` when `clips` > 0. The upload is
        written to a private temporary folder, removed when the request ends; nothing is stored."""

        def run() -> tuple[list[dict[str, Any]], list[str]]:
            with explorer.upload(file.file, file.filename) as up:
                return explorer.describe_upload(up, _models(model), k=k, vocabulary=vocabulary, template=prompt,
                                                n_clips=clips, rank=rank)

        result, warnings = await work(run)
        return json_response(result, warnings=warnings)

    @app.get("/api/clips/{clip_sha256}", summary="A stored clip")
    async def clip(clip_sha256: ShaParam) -> Response:
        """The clip's record, the spaces holding its vector (`models`) and `audio_url` when one of its
        recorded files is readable unchanged (else null)."""
        return json_response(await work(explorer.clip, clip_sha256))

    @app.get("/api/clips/{clip_sha256}/audio", summary="A stored clip's audio", response_class=Response)
    async def clip_audio(clip_sha256: ShaParam) -> Response:
        """The file recorded for the clip (only paths recorded in the store, only while their size and
        mtime are as recorded); formats a browser cannot play (AIFF) are sent as WAV."""
        path, media_type = await work(explorer.clip_audio, clip_sha256)
        if media_type is not None:
            return FileResponse(path, media_type=media_type, content_disposition_type="inline")
        return Response(await work(_as_wav, path), media_type="audio/wav")

    @app.get("/api/clips/{clip_sha256}/similar", summary="Nearest stored clips of a stored clip")
    async def similar(clip_sha256: ShaParam, model: ModelParam = None, k: KParam = 10) -> Response:
        """Per space (default: every space holding the clip), the k nearest stored clips by cosine (exact
        FAISS inner-product search over normalised vectors), the clip itself excluded."""
        return json_response(await work(explorer.similar, clip_sha256, _models(model), k))

    @app.get("/api/clips/{clip_sha256}/descriptors", summary="Nearest descriptors of a stored clip")
    async def descriptors(clip_sha256: ShaParam, model: ModelParam = None, k: KParam = 5, vocabulary: VocabParam = None,
                          prompt: PromptParam = BARE) -> Response:
        """describe's answer for the clip's stored vector (nothing is decoded), per text-capable model
        (default: every text-capable space holding the clip)."""
        result, warnings = await work(explorer.descriptors, clip_sha256, _models(model), k=k, vocabulary=vocabulary,
                                      template=prompt)
        return json_response(result, warnings=warnings)

    @app.get("/api/map", summary="2-D PCA map of a space's clips and words")
    async def space_map(model: Annotated[str | None, Query(description="One model (default: describe's).")] = None,
                        vocabulary: VocabParam = None, prompt: PromptParam = BARE) -> Response:
        """Stored clips and the vocabulary's words projected on the top two axes of a PCA of the space
        (each modality centred on its own mean; see docs/serve.md)."""
        return json_response(await work(explorer.space_map, model, vocabulary=vocabulary, template=prompt))

    @app.post("/api/map", summary="The map with an uploaded file placed on it")
    async def space_map_upload(
        file: Annotated[UploadFile, File(description="One audio file.")],
        model: Annotated[str | None, Form(description="One model (default: describe's).")] = None,
        vocabulary: Annotated[str | None, Form(description="Vocabulary name.")] = None,
        prompt: Annotated[str, Form(description="Prompt template.")] = BARE,
    ) -> Response:
        """As GET /api/map, plus `upload`: where the file's vector lands (its stored vector if its content
        is stored)."""

        def run() -> dict[str, Any]:
            up: Upload
            with explorer.upload(file.file, file.filename) as up:
                return explorer.space_map(model, vocabulary=vocabulary, template=prompt, upload=up)

        return json_response(await work(run))

    return app


def _as_wav(path: Any) -> bytes:
    """A stored file the browser cannot play, decoded and sent as 16-bit WAV."""
    import soundfile as sf

    from timbredb.audio import read_pcm

    pcm, sample_rate = read_pcm(path)
    buf = io.BytesIO()
    sf.write(buf, pcm, sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()
