"""The server's ASGI app (FastAPI): OpenAI-compatible HTTP, FunASR's WebSocket protocol, a web page.

* ``POST /v1/audio/transcriptions`` (multipart: ``file``, ``model``, ``response_format``,
  ``language``, ``prompt``, ``temperature``): OpenAI's speech-to-text call; ``prompt`` is the
  hotword list (whitespace or comma separated) when the model takes hotwords (SeACo), else ignored.
  ``model`` may be any name (clients hard-code ``whisper-1``): the server has one model.
* ``GET /v1/models``, ``GET /health`` (status, model, modes, open streams, queued calls).
* WebSocket at ``/`` (where FunASR's clients connect) and ``/ws``: FunASR's protocol
  (:mod:`funasr_lite.serve.funasr_ws`).
* ``GET /`` the web page (``static/index.html``): microphone or file, live and final text.

Limits (:class:`~funasr_lite.serve.engine.ServeOptions`): a body over ``max_upload_mb`` -> 413
before it is read; more than ``max_pending`` model calls -> 503 with ``Retry-After``; more than
``max_connections`` streams -> the new one is closed with 1013 ("try again later").
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Optional

from fastapi import FastAPI, File, Form, UploadFile, WebSocket
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.websockets import WebSocketDisconnect

from funasr_lite.api import AudioInputError
from funasr_lite.inference.speech2text import DecodeError
from funasr_lite.serve.engine import Busy, ServeEngine
from funasr_lite.serve.funasr_ws import CLOSE_INTERNAL, CLOSE_TRY_AGAIN, FunasrWsSession, ProtocolError, client_hotwords, close_reason
from funasr_lite.serve.openai_format import RESPONSE_FORMATS, render

logger = logging.getLogger(__name__)
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
CLOSE_GOING_AWAY = 1001


def _error(status: int, message: str, kind: str = "invalid_request_error", headers=None) -> JSONResponse:
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": status}},
                        status_code=status, headers=headers)


class BodyLimit:
    """ASGI middleware: a request body past ``max_bytes`` is answered 413 (by its Content-Length
    before reading, else as soon as the count passes the limit) and never held whole."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, int(max_bytes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_big = _error(413, f"request body over the server's limit of {self.max_bytes} bytes")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await too_big(scope, receive, send)
        seen = 0
        started = False

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooBig()
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooBig:
            if not started:
                await too_big(scope, receive, send)


class _TooBig(Exception):
    pass


def create_app(engine: ServeEngine) -> BodyLimit:
    """The ASGI app serving ``engine`` (its FastAPI app is ``.fastapi``)."""
    options = engine.options
    app = FastAPI(title="funasr_lite server", docs_url="/docs", redoc_url=None)
    app.state.engine = engine

    @app.get("/health")
    async def health():
        return {"status": "ok", **engine.describe(), "streams": engine.connections, "pending": engine.pending,
                **engine.stats}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": engine.model_name, "object": "model", "created": 0,
                                            "owned_by": "funasr_lite"}]}

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(file: UploadFile = File(...), model: Optional[str] = Form(None),
                             response_format: str = Form("json"), language: Optional[str] = Form(None),
                             prompt: Optional[str] = Form(None), temperature: Optional[float] = Form(None)):
        started = time.perf_counter()
        if response_format not in RESPONSE_FORMATS:
            return _error(400, f"response_format {response_format!r} is not one of {', '.join(RESPONSE_FORMATS)}")
        data = await file.read()
        source = f"upload {os.path.basename(file.filename or 'audio')!r}"
        try:
            hotwords = client_hotwords(prompt) if engine.takes_hotwords else None
        except ProtocolError as e:
            return _error(400, f"prompt: {e.reason}")
        engine.stats["requests"] += 1
        try:
            result = await engine.run(engine.transcribe_bytes, data, None, source, hotwords)
        except Busy as e:
            return _error(503, f"server busy: {e}", "server_busy", headers={"Retry-After": "1"})
        except (AudioInputError, DecodeError, ValueError) as e:  # the audio (or its length) cannot be decoded
            engine.stats["errors"] += 1
            return _error(400, f"{source}: {e}")
        except Exception as e:  # noqa: BLE001 (a bug: logged with its trace, answered 500, the server goes on)
            engine.stats["errors"] += 1
            logger.exception("%s: unexpected error", source)
            return _error(500, f"{source}: internal error: {type(e).__name__}", "server_error")
        if options.log_requests:
            logger.info("%s: %.2f s of audio in %.3f s -> %d characters", source, result["duration"],
                        time.perf_counter() - started, len(result.get("text", "")))
        body, media_type = render(result, response_format, language)
        if isinstance(body, dict):
            return JSONResponse(body)
        return PlainTextResponse(body, media_type=media_type)

    @app.get("/")
    async def page():
        return FileResponse(os.path.join(STATIC_DIR, "index.html"), media_type="text/html")

    @app.get("/static/{name}")
    async def static(name: str):
        # Only the files shipped in static/ (a name, not a path: no client value reaches the disk).
        if name not in _static_files():
            return Response(status_code=404)
        return FileResponse(os.path.join(STATIC_DIR, name))

    async def serve_stream(websocket: WebSocket):
        offered = websocket.scope.get("subprotocols") or []
        await websocket.accept(subprotocol="binary" if "binary" in offered else None)
        peer = f"{websocket.client.host}:{websocket.client.port}" if websocket.client else "?"
        try:
            engine.open_connection()
        except Busy as e:
            logger.warning("stream from %s refused: %s", peer, e)
            await _close(websocket, CLOSE_TRY_AGAIN, f"server busy: {e}")
            return
        session = FunasrWsSession(engine, websocket.send_json)
        try:
            while True:
                try:
                    message = await asyncio.wait_for(websocket.receive(), timeout=options.idle_timeout_s)
                except asyncio.TimeoutError:
                    logger.warning("stream %s (%s): nothing for %.0f s, closed", peer, session.wav_name,
                                   options.idle_timeout_s)
                    await websocket.close(CLOSE_GOING_AWAY, f"idle for {options.idle_timeout_s:g} s")
                    return
                if message["type"] == "websocket.disconnect":
                    if not session.idle:
                        logger.warning("stream %s (%s): the client left mid-stream (code %s); stream freed", peer,
                                       session.wav_name, message.get("code"))
                    return
                if message.get("text") is not None:
                    await session.on_text(message["text"])
                elif message.get("bytes") is not None:
                    await session.on_binary(message["bytes"])
        except ProtocolError as e:
            logger.warning("stream %s (%s): %s; closed with %d", peer, session.wav_name, e.reason, e.code)
            await _close(websocket, e.code, e.reason)
        except Busy as e:
            logger.warning("stream %s (%s): busy: %s", peer, session.wav_name, e)
            await _close(websocket, CLOSE_TRY_AGAIN, f"server busy: {e}")
        except WebSocketDisconnect as e:
            logger.warning("stream %s (%s): the client left (code %s); stream freed", peer, session.wav_name, e.code)
        except Exception as e:  # noqa: BLE001 (a bug: logged with its trace; this stream closes, the server goes on)
            engine.stats["errors"] += 1
            logger.exception("stream %s (%s): unexpected error", peer, session.wav_name)
            await _close(websocket, CLOSE_INTERNAL, f"internal error: {type(e).__name__}")
        finally:
            session.close()
            engine.close_connection()

    app.add_api_websocket_route("/", serve_stream)
    app.add_api_websocket_route("/ws", serve_stream)
    limited = BodyLimit(app, int(options.max_upload_mb * 1024 * 1024))
    limited.fastapi = app
    return limited


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    try:
        await websocket.close(code, close_reason(reason))
    except Exception:  # noqa: BLE001 (the client may already be gone)
        pass


def _static_files():
    return set(os.listdir(STATIC_DIR))


__all__ = ["BodyLimit", "create_app"]
