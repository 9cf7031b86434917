"""The calls: one nucleus, a batch, and the occlusion map of a nucleus."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import numpy as np

from ._batcher import QueueFull
from ._requests import (
    _abstain,
    _body,
    _channel_map,
    _from_json,
    _int,
    _localizations,
    _roi,
    _roi_json,
)
from ._service import HTTPError, _Service


def _prediction(pred, svc: _Service, abstain_below: float | None = None) -> dict:
    from .._classifier import abstain

    return {
        **abstain(pred, abstain_below).to_dict(),
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


async def _classify(request, svc: _Service):
    from starlette.responses import JSONResponse

    locs, doc = await _localizations(request, svc)
    roi = _roi(request.query_params.get("roi"))
    if doc is not None and doc.get("roi_nm") is not None:
        roi = _roi_json(doc["roi_nm"])
    level = _abstain(request.query_params.get("abstain"))
    pred = await _classify_one(svc, locs, roi, _channel_map(request.query_params))
    return JSONResponse(_prediction(pred, svc, level))


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
    level = _abstain(request.query_params.get("abstain"))
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
            out.append(_prediction(r, svc, level))
    return JSONResponse({"results": out})


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
