"""Live sessions over HTTP: open, add localizations, the running call, close."""

from __future__ import annotations

import asyncio
import json
import secrets
import time

from ._requests import _abstain, _body, _localizations, _roi_json
from ._service import HTTPError, _Service


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
    clf = svc.clf.with_abstention(_abstain(doc.get("abstain")))
    sess = LiveNucleus(clf, region_nm=region, channel_names=names,
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
