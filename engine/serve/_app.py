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
import json
import os
import secrets
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AinuError
from ._batcher import Batcher, QueueFull
from ._metrics import Metrics

__all__ = ["ServeConfig", "create_app"]

API = "v1"


@dataclass(frozen=True)
class ServeConfig:
    """Limits and batching of a server (the CLI's options)."""

    token: str | None = None
    max_batch: int = 16
    max_delay_ms: float = 5.0
    queue_size: int = 64
    max_body_mb: float = 256.0
    max_localizations: int = 20_000_000
    render_threads: int = 2
    request_timeout_s: float = 120.0
    live_sessions: int = 32
    live_idle_s: float = 600.0


class HTTPError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class _Service:
    """What the routes share: the classifier, the render pool, the batcher, the live sessions."""

    def __init__(self, model: str | os.PathLike, cfg: ServeConfig, *, backend: str, device: str):
        import hashlib

        from .._classifier import Classifier

        if Path(model).suffix.lower() != ".onnx":
            raise AinuError(
                "the server takes an exported .onnx model only (a model file is data, never code)",
                path=model,
                hint="ainu-engine export RUN/best.pt --out model.onnx",
            )
        self.cfg = cfg
        self.model_path = Path(model)
        self.model_sha = hashlib.sha256(self.model_path.read_bytes()).hexdigest()
        self.clf = Classifier.load(model, backend, device=device, spinning=False)
        self.metrics = Metrics()
        self.pool = ThreadPoolExecutor(cfg.render_threads, thread_name_prefix="ainu-render")
        self.batcher = Batcher(self.clf, max_batch=cfg.max_batch,
                               max_delay_s=cfg.max_delay_ms / 1e3,
                               queue_size=cfg.queue_size, on_batch=self.metrics.batch)  # fmt: skip
        self.live: dict[str, tuple[object, float]] = {}
        self.live_lock = threading.Lock()
        self.ready = False

    def warmup(self) -> None:
        """Compile the rendering kernels (a small nucleus) and run the model once at the batch
        shape, so that the first request is served at full speed; then ready."""
        from ..io import Localizations

        rng = np.random.default_rng(0)
        r = 3000.0 * np.sqrt(rng.random(5000))
        a = rng.random(5000) * 2 * np.pi
        try:
            self.clf.prepare(Localizations(1e4 + r * np.cos(a), 1e4 + r * np.sin(a)))
        except AinuError:
            pass  # a model whose channels a one-channel nucleus cannot feed: compiled anyway
        self.clf.backend.warmup()
        self.ready = True

    def close(self) -> None:
        self.batcher.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        with self.live_lock:
            for sess, _ in self.live.values():
                sess.close()
            self.live.clear()
        self.clf.close()

    # -- live sessions ----------------------------------------------------------------------
    def sweep(self) -> None:
        now = time.monotonic()
        with self.live_lock:
            for sid in [k for k, (_, t) in self.live.items() if now - t > self.cfg.live_idle_s]:
                self.live.pop(sid)[0].close()

    def session(self, sid: str):
        self.sweep()
        with self.live_lock:
            if sid not in self.live:
                raise HTTPError(
                    404, "unknown_session", f"no live session {sid!r} (closed or expired)"
                )
            sess, _ = self.live[sid]
            self.live[sid] = (sess, time.monotonic())
            return sess


# -- request parsing ----------------------------------------------------------------------------
async def _body(request, limit_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit_bytes:
                raise HTTPError(413, "too_large", f"body of {declared} bytes, over {limit_bytes}")
        except ValueError:
            raise HTTPError(400, "bad_request", "invalid Content-Length") from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit_bytes:
            raise HTTPError(413, "too_large", f"body over the limit of {limit_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _roi(text: str | None):
    """A box ``x0,y0,x1,y1`` or a polygon ``x,y;x,y;...`` in nm, as a (K, 2) polygon."""
    if not text:
        return None
    try:
        if ";" in text:
            poly = np.array([[float(v) for v in p.split(",")] for p in text.split(";")])
        else:
            v = [float(t) for t in text.split(",")]
            if len(v) != 4 or v[2] <= v[0] or v[3] <= v[1]:
                raise ValueError
            x0, y0, x1, y1 = v
            poly = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    except ValueError:
        raise HTTPError(400, "bad_request", "roi must be a box x0,y0,x1,y1 (x1 > x0, y1 > y0) or "
                        f"a polygon x,y;x,y;... in nm, got {text[:80]!r}") from None  # fmt: skip
    if poly.ndim != 2 or poly.shape[1] != 2 or len(poly) < 3 or not np.isfinite(poly).all():
        raise HTTPError(400, "bad_request", "roi polygon needs >= 3 finite x,y vertices")
    return poly


def _roi_json(value):
    if value is None:
        return None
    try:
        a = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise HTTPError(400, "bad_request", "roi_nm must be a box or a list of [x, y]") from None
    if a.shape == (4,):
        return _roi(",".join(str(v) for v in a))
    return _roi(";".join(f"{x},{y}" for x, y in a.reshape(-1, 2))) if a.size % 2 == 0 else _roi("x")


def _read_options(query) -> dict:
    opts: dict = {}
    if "format" in query:
        opts["format"] = query["format"]
    if "camera_pixel_nm" in query:
        try:
            opts["camera_pixel_nm"] = float(query["camera_pixel_nm"])
        except ValueError:
            raise HTTPError(400, "bad_request", "camera_pixel_nm must be a number") from None
    return opts


def _from_json(doc, limit: int, *, finite: bool = True):
    """Localizations from ``{"x_nm": [...], "y_nm": [...], "channel"?, "frame"?, ...}``."""
    from ..io import Localizations, Metadata

    if not isinstance(doc, dict) or "x_nm" not in doc or "y_nm" not in doc:
        raise HTTPError(400, "bad_request", "JSON body needs x_nm and y_nm arrays")
    cols = {}
    for key in ("x_nm", "y_nm", "channel", "frame", "precision_nm"):
        if doc.get(key) is None:
            continue
        try:
            a = np.asarray(doc[key], np.float64)
        except (TypeError, ValueError):
            raise HTTPError(400, "bad_request", f"{key} must be an array of numbers") from None
        if a.ndim != 1:
            raise HTTPError(400, "bad_request", f"{key} must be a flat array")
        cols[key] = a
    n = len(cols["x_nm"])
    for key in ("x_nm", "y_nm") if finite else ():  # live sessions count them instead
        if not np.isfinite(cols[key]).all():
            bad = int((~np.isfinite(cols[key])).sum())
            raise HTTPError(400, "bad_request", f"{key} holds {bad} NaN or infinite values")
    if n > limit:
        raise HTTPError(413, "too_many_localizations", f"{n} localizations, over {limit}")
    if any(len(v) != n for v in cols.values()):
        raise HTTPError(400, "bad_request", "the arrays have different lengths")
    for key in ("channel", "frame"):
        if key in cols:
            v = cols[key]
            if not (
                np.isfinite(v).all()
                and (v == np.rint(v)).all()
                and np.abs(v).max(initial=0) < 2**31
            ):
                raise HTTPError(400, "bad_request", f"{key} must hold whole numbers")
            cols[key] = v.astype(np.int64)
    names = doc.get("channel_names") or {}
    try:
        names = {int(k): str(v) for k, v in names.items()}
    except (AttributeError, TypeError, ValueError):
        raise HTTPError(400, "bad_request", "channel_names must map channel ids to names") from None
    return Localizations(
        cols["x_nm"], cols["y_nm"], channel=cols.get("channel"), frame=cols.get("frame"),
        precision_nm=cols.get("precision_nm"), meta=Metadata(channel_names=names),
    )  # fmt: skip


def _from_bytes(body: bytes, opts: dict, limit: int):
    """Localizations from a file's bytes, read as ``read`` reads a file (format from content)."""
    from ..io import read

    with tempfile.TemporaryDirectory(prefix="ainu-serve-") as tmp:
        path = Path(tmp) / "upload"
        path.write_bytes(body)
        try:
            locs = read(path, keep_extra=False, **opts)
        except AinuError as err:  # the message names the request, not a temporary file
            raise type(err)(
                err.problem, path="request body", where=err.where, expected=err.expected,
                found=err.found, hint=err.hint,
            ) from None  # fmt: skip
    if locs.n > limit:
        raise HTTPError(413, "too_many_localizations", f"{locs.n} localizations, over {limit}")
    return locs


async def _localizations(request, svc: _Service, *, finite: bool = True):
    body = await _body(request, int(svc.cfg.max_body_mb * 2**20))
    if not body:
        raise HTTPError(400, "bad_request", "empty body: send a localization file or JSON arrays")
    ctype = request.headers.get("content-type", "")
    if "json" in ctype or body[:1] in (b"{", b"["):
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as err:
            raise HTTPError(400, "bad_json", f"body is not valid JSON: {err}") from None
        return _from_json(doc, svc.cfg.max_localizations, finite=finite), doc
    loop = asyncio.get_running_loop()
    locs = await loop.run_in_executor(
        svc.pool, _from_bytes, body, _read_options(request.query_params), svc.cfg.max_localizations
    )
    return locs, None


def _prediction(pred, svc: _Service) -> dict:
    return {
        **pred.to_dict(),
        "model_sha256": svc.model_sha,
        "render_spec_hash": svc.clf.info.render_spec.hash(),
    }


async def _classify_one(svc: _Service, locs, roi, channel_map=None):
    loop = asyncio.get_running_loop()
    clf = svc.clf.with_channel_map(channel_map)
    prepared = await loop.run_in_executor(svc.pool, lambda: clf.prepare(locs, roi_nm=roi))
    try:
        fut = svc.batcher.submit(prepared)
    except QueueFull:
        svc.metrics.rejected_full += 1
        raise HTTPError(
            503, "busy", "the inference queue is full; retry", {"Retry-After": "1"}
        ) from None
    return await asyncio.wait_for(asyncio.wrap_future(fut), svc.cfg.request_timeout_s)


def _channel_map(query):
    from ..render import parse_channel_map

    try:
        return parse_channel_map(query.get("channel_map"))
    except ValueError as err:
        raise HTTPError(400, "bad_request", f"channel_map: {err}") from None


# -- the routes -----------------------------------------------------------------------------------
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
            return _error(400, type(err).__name__, str(err))
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


async def _classify(request, svc: _Service):
    from starlette.responses import JSONResponse

    locs, doc = await _localizations(request, svc)
    roi = _roi(request.query_params.get("roi"))
    if doc is not None and doc.get("roi_nm") is not None:
        roi = _roi_json(doc["roi_nm"])
    pred = await _classify_one(svc, locs, roi, _channel_map(request.query_params))
    return JSONResponse(_prediction(pred, svc))


async def _classify_batch(request, svc: _Service):
    from starlette.responses import JSONResponse

    body = await _body(request, int(svc.cfg.max_body_mb * 2**20))
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPError(400, "bad_json", "body is not valid JSON") from None
    nuclei = doc.get("nuclei") if isinstance(doc, dict) else None
    if not isinstance(nuclei, list) or not nuclei:
        raise HTTPError(400, "bad_request", 'JSON body needs "nuclei": a non-empty list')
    cmap = _channel_map(request.query_params)
    limit = svc.cfg.max_localizations
    jobs = [
        _classify_one(svc, _from_json(n, limit), _roi_json(n.get("roi_nm")), cmap) for n in nuclei
    ]
    results = await asyncio.gather(*jobs, return_exceptions=True)
    out = []
    for r in results:
        if isinstance(r, HTTPError):
            out.append({"error": {"code": r.code, "message": r.message}})
        elif isinstance(r, Exception):
            out.append({"error": {"code": type(r).__name__, "message": str(r)[:300]}})
        else:
            out.append(_prediction(r, svc))
    return JSONResponse({"results": out})


async def _live_open(request, svc: _Service):
    from starlette.responses import JSONResponse

    from ..live import LiveNucleus, StopRule

    body = await _body(request, 1 << 20)
    try:
        doc = json.loads(body) if body.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise HTTPError(400, "bad_json", "body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise HTTPError(400, "bad_request", "JSON object expected")
    svc.sweep()
    with svc.live_lock:
        if len(svc.live) >= svc.cfg.live_sessions:
            raise HTTPError(503, "too_many_sessions",
                            f"{svc.cfg.live_sessions} live sessions are open; close one or retry",
                            {"Retry-After": "5"})  # fmt: skip
    rule = StopRule.parse(doc["stop"]) if doc.get("stop") else None
    try:
        names = {int(k): str(v) for k, v in (doc.get("channel_names") or {}).items()}
    except (AttributeError, TypeError, ValueError):
        raise HTTPError(400, "bad_request", "channel_names must map channel ids to names") from None
    region = _roi_json(doc.get("roi_nm"))
    sess = LiveNucleus(svc.clf, region_nm=region, channel_names=names,
                       channel_map=doc.get("channel_map"), stop_rule=rule)  # fmt: skip
    sid = secrets.token_hex(8)
    with svc.live_lock:
        svc.live[sid] = (sess, time.monotonic())
    return JSONResponse({"id": sid, "idle_timeout_s": svc.cfg.live_idle_s}, status_code=201)


async def _live_add(request, svc: _Service):
    from starlette.responses import JSONResponse

    sess = svc.session(request.path_params["sid"])
    locs, _ = await _localizations(request, svc, finite=False)
    r = await asyncio.get_running_loop().run_in_executor(svc.pool, lambda: sess.add(locs))
    return JSONResponse({"added": r.added, "not_finite": r.not_finite, "outside": r.outside,
                         "unknown_channel": r.unknown_channel,
                         "n_localizations": sess.n_localizations})  # fmt: skip


async def _live_get(request, svc: _Service):
    from starlette.responses import JSONResponse

    sess = svc.session(request.path_params["sid"])
    call = await asyncio.get_running_loop().run_in_executor(svc.pool, sess.call)
    return JSONResponse(call.to_dict())


async def _live_close(request, svc: _Service):
    from starlette.responses import Response

    sid = request.path_params["sid"]
    with svc.live_lock:
        item = svc.live.pop(sid, None)
    if item is None:
        raise HTTPError(404, "unknown_session", f"no live session {sid!r} (closed or expired)")
    item[0].close()
    return Response(status_code=204)


async def _explain(request, svc: _Service):
    """Occlusion map of one nucleus (as /v1/classify takes it): JSON (default), ``response=npy``
    (float32 (T, S, S)) or ``response=png`` (the overlay); ``window``, ``stride`` in model-input
    pixels (default the paper's 64/32 at 512 px, scaled), ``target`` a class name."""
    import io

    from starlette.responses import JSONResponse, Response

    from ..explain import default_window, occlusion, write_overlay

    locs, doc = await _localizations(request, svc)
    q = request.query_params
    fmt = q.get("response", "json")  # (``format`` is the input's, as for /v1/classify)
    if fmt not in ("json", "npy", "png"):
        raise HTTPError(400, "bad_request", "response must be json, npy or png")
    try:
        win, stride = default_window(svc.clf.info.input_size, _int(q, "window"), _int(q, "stride"))
    except ValueError as err:
        raise HTTPError(400, "bad_request", str(err)) from None
    target = q.get("target")
    if target is not None and target not in svc.clf.info.classes:
        raise HTTPError(400, "bad_request", f"target must be one of {list(svc.clf.info.classes)}")
    roi = _roi(q.get("roi")) if doc is None else _roi_json(doc.get("roi_nm"))
    clf = svc.clf.with_channel_map(_channel_map(q))

    def work():
        prep = clf.prepare(locs, roi_nm=roi)
        if len(prep.items) != 1:
            raise HTTPError(400, "bad_request", "explain takes image-mode models (one image)")
        return prep, occlusion(clf, prep.items[0], window=win, stride=stride, target=target)

    prep, attr = await asyncio.get_running_loop().run_in_executor(svc.pool, work)
    names = [svc.clf.info.classes[t] for t in attr.targets]
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, attr.maps.astype(np.float32))
        return Response(buf.getvalue(), media_type="application/x-npy",
                        headers={"X-Targets": ",".join(names)})  # fmt: skip
    if fmt == "png":
        with tempfile.TemporaryDirectory(prefix="ainu-serve-") as tmp:
            png = write_overlay(Path(tmp) / "map.png", prep.items[0], attr.maps[0],
                                title=f"occlusion: evidence for {names[0]}")  # fmt: skip
            return Response(png.read_bytes(), media_type="image/png")
    return JSONResponse({
        "targets": names, "window": win, "stride": stride, "shape": list(attr.maps.shape),
        "maps": np.round(attr.maps.astype(np.float64), 7).tolist(),
        "output": None if attr.output is None else np.asarray(attr.output, float).tolist(),
        "seconds": round(attr.seconds, 4),
    })  # fmt: skip


def _int(query, key: str) -> int | None:
    if key not in query:
        return None
    try:
        v = int(query[key])
    except ValueError:
        raise HTTPError(400, "bad_request", f"{key} must be a whole number of pixels") from None
    if v < 1:
        raise HTTPError(400, "bad_request", f"{key} must be >= 1")
    return v


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


#: (path, handler, methods, needs the token)
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
    """The ASGI app serving ``model`` (an exported .onnx) with ``cfg``'s limits and batching."""
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
