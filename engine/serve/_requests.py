"""Reading requests: bodies within their limits, localizations from file bytes or JSON, ROIs,
channel maps and query numbers, every bad input a 4xx with a one-line message."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import numpy as np

from ..errors import AinuError
from ._service import HTTPError, _Service


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

    if not isinstance(doc, dict) or doc.get("x_nm") is None or doc.get("y_nm") is None:
        raise HTTPError(400, "bad_request", "JSON body needs x_nm and y_nm arrays")
    cols = {}
    for key in ("x_nm", "y_nm", "channel", "frame", "precision_nm", "photons"):
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
        precision_nm=cols.get("precision_nm"), photons=cols.get("photons"),
        meta=Metadata(channel_names=names),
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
    return locs.with_meta(source_path="request body")  # errors name the request, not a temp file


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


def _channel_map(query):
    from ..render import parse_channel_map

    try:
        return parse_channel_map(query.get("channel_map"))
    except ValueError as err:
        raise HTTPError(400, "bad_request", f"channel_map: {err}") from None


def _abstain(value) -> float | None:
    """The abstention level of a request: ``abstain=true`` (0.75), a probability, or
    ``false``/absent (off); a 400 otherwise."""
    from .._classifier import ABSTAIN_BELOW

    if value is None or value is False or str(value).lower() in ("", "false", "0", "off", "no"):
        return None
    if value is True or str(value).lower() in ("true", "yes", "on"):
        return ABSTAIN_BELOW
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = -1.0
    if not 0.0 < v <= 1.0:
        raise HTTPError(400, "bad_request", "abstain must be true, false or a probability in "
                        f"(0, 1], got {value!r}")  # fmt: skip
    return v


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
