"""The HTTP service (``ainu-engine serve``): an ASGI app on Starlette, served by uvicorn.

Routes (JSON in and out unless stated):

- ``POST /v1/classify`` — one nucleus: the body is the bytes of any localization file the engine
  reads (format detected from the content; Arrow IPC and Parquet are the fast ones), or JSON
  ``{"x_nm": [...], "y_nm": [...], "channel": [...]}``; query ``roi=x0,y0,x1,y1`` (nm),
  ``camera_pixel_nm``, ``format``, ``channel_map=polII=647``. Returns the call.
- ``POST /v1/classify/batch`` — JSON ``{"nuclei": [{"x_nm": ..., ...}, ...]}``.
- ``POST /v1/live`` (open: JSON ``{"roi_nm", "channel_names", "stop"}``),
  ``POST /v1/live/{id}/localizations`` (a file's bytes or JSON arrays), ``GET /v1/live/{id}``
  (the running call and stop advice), ``DELETE /v1/live/{id}``.
- ``GET /v1/model``, ``GET /healthz``, ``GET /readyz``, ``GET /metrics`` (Prometheus text).

Errors are JSON ``{"error": {"code", "message"}}`` with a 4xx status for anything the client sent
(never a traceback); 503 with ``Retry-After`` when the inference queue is full.
"""

from __future__ import annotations

import asyncio
import hmac
import time

from ..errors import AinuError
from ._classify_routes import _classify, _classify_batch, _explain
from ._live_routes import _live_add, _live_close, _live_get, _live_open
from ._service import HTTPError, ServeConfig, _Service

__all__ = ["ServeConfig", "create_app"]

API = "v1"


def _endpoint(name: str, fn, svc: _Service, *, auth: bool = True):
    """``fn(request, svc)`` as a Starlette endpoint: token check, errors as JSON (4xx for what
    the client sent, 503 when busy, never a traceback), and the request counted in the metrics."""
    cfg = svc.cfg

    async def endpoint(request):
        t0 = time.perf_counter()
        status = 500
        try:
            if auth and cfg.token is not None:
                _check_token(request, cfg.token)
            resp = await fn(request, svc)
            status = resp.status_code
            return resp
        except HTTPError as err:
            status = err.status
            return _error(err.status, err.code, err.message, err.headers)
        except AinuError as err:
            status = 400
            return _error(400, type(err).__name__, for_http(str(err)))
        except TimeoutError:
            status = 504
            return _error(504, "timeout", f"no result within {cfg.request_timeout_s:g} s")
        except ValueError as err:
            status = 400
            return _error(400, "bad_request", str(err).splitlines()[0][:300] if str(err) else "")
        except Exception as err:  # noqa: BLE001 - a response, never a traceback
            import logging

            logging.getLogger("ainu_engine.serve").exception("internal error in %s", name)
            status = 500
            return _error(500, "internal", f"internal error ({type(err).__name__}); see the log")
        finally:
            svc.metrics.request(name, status, time.perf_counter() - t0)

    return endpoint


#: A command's flags and the query parameters a request fixes the same thing with.
_FLAGS = (("--channel-map ", "the query parameter channel_map="), ("--channel-map", "channel_map="),
          ("--camera-pixel-nm ", "the query parameter camera_pixel_nm="),
          ("--camera-pixel-nm", "camera_pixel_nm="), ("--format ", "the query parameter format="))


def for_http(message: str) -> str:
    """An engine error's message for an HTTP client: the command-line flags it suggests are
    named as the query parameters that do the same.

    Parameters
    ----------
    message : str

    Returns
    -------
    str

    Examples
    --------
    >>> for_http("hint: pass --channel-map polII=0")
    'hint: pass the query parameter channel_map=polII=0'
    """
    for flag, param in _FLAGS:
        message = message.replace(flag, param)
    return message


async def _model(request, svc: _Service):
    from starlette.responses import JSONResponse

    return JSONResponse({**svc.clf.info.summary(), "model_sha256": svc.model_sha,
                         "backend": svc.clf.backend.describe()})  # fmt: skip


async def _healthz(request, svc: _Service):
    from starlette.responses import JSONResponse

    return JSONResponse({"status": "ok"})


async def _readyz(request, svc: _Service):
    from starlette.responses import JSONResponse

    if not svc.ready:
        raise HTTPError(503, "not_ready", "warming up", {"Retry-After": "1"})
    return JSONResponse({"status": "ready", "model": svc.model_path.name})


async def _metrics(request, svc: _Service):
    from starlette.responses import PlainTextResponse

    with svc.live_lock:
        n_live = len(svc.live)
    text = svc.metrics.render(queue_depth=svc.batcher.depth, live_sessions=n_live)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


ROUTES = (
    (f"/{API}/classify", _classify, ["POST"], True),
    (f"/{API}/classify/batch", _classify_batch, ["POST"], True),
    (f"/{API}/live", _live_open, ["POST"], True),
    (f"/{API}/live/{{sid}}/localizations", _live_add, ["POST"], True),
    (f"/{API}/live/{{sid}}", _live_get, ["GET"], True),
    (f"/{API}/live/{{sid}}", _live_close, ["DELETE"], True),
    (f"/{API}/explain", _explain, ["POST"], True),
    (f"/{API}/model", _model, ["GET"], True),
    ("/healthz", _healthz, ["GET"], False),
    ("/readyz", _readyz, ["GET"], False),
    ("/metrics", _metrics, ["GET"], True),
)


def create_app(model, cfg: ServeConfig | None = None, *, backend: str = "auto",
               device: str = "auto"):  # fmt: skip
    """The ASGI app serving ``model`` with ``cfg``'s limits and batching.

    Parameters
    ----------
    model : path
        An exported ``.onnx`` (a checkpoint is refused: models are data).
    cfg : ServeConfig, optional
        Limits, batching, token.
    backend, device : str
        See :func:`ainu_engine.backends.create_backend`.

    Returns
    -------
    starlette.applications.Starlette

    Raises
    ------
    ainu_engine.errors.AinuError
        Not an ``.onnx``, or a model that cannot be loaded.
    """
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.routing import Route

    svc = _Service(model, cfg or ServeConfig(), backend=backend, device=device)

    @asynccontextmanager
    async def lifespan(app):
        await asyncio.get_running_loop().run_in_executor(None, svc.warmup)
        yield
        svc.close()

    routes = [
        Route(path, _endpoint(path, fn, svc, auth=auth), methods=methods)
        for path, fn, methods, auth in ROUTES
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.service = svc
    return app


def _check_token(request, token: str) -> None:
    got = request.headers.get("authorization", "")
    if not got.startswith("Bearer ") or not hmac.compare_digest(got[7:].encode(), token.encode()):
        raise HTTPError(401, "unauthorized", "missing or wrong bearer token",
                        {"WWW-Authenticate": "Bearer"})  # fmt: skip


def _error(status: int, code: str, message: str, headers: dict | None = None):
    from starlette.responses import JSONResponse

    msg = " ".join(str(message).split())[:500]
    return JSONResponse({"error": {"code": code, "message": msg}}, status_code=status,
                        headers=headers or {})  # fmt: skip
