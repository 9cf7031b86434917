"""A client of ``ainu-engine serve`` with the methods and return types of
:class:`ainu_engine.Classifier` — so that acquisition code moves between the engine in its own
process and the engine as a service by changing one line::

    clf = Classifier.load("model.onnx")            # in process
    clf = Client("http://127.0.0.1:8750")          # the service

Only the standard library (``http.client``): nothing to install beside the acquisition program.
Requests answered 503 (the server's queue is full) are retried with exponential backoff.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.parse
from pathlib import Path

import numpy as np

from ._classifier import Prediction
from .errors import AinuError
from .io import Localizations

__all__ = ["Client", "RemoteLiveNucleus", "ServiceError"]


class ServiceError(AinuError):
    """The service answered with an error (``status`` and the server's ``code``).

    Parameters
    ----------
    status : int
        The HTTP status.
    code : str
        The server's error code.
    message : str
        The server's one-line message.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code = status, code
        super().__init__(f"{message} (HTTP {status}, {code})")


def _arrow_bytes(locs: Localizations) -> bytes:
    """The localizations as an Arrow IPC file (the server reads it fastest); names kept."""
    import tempfile

    from .io import write

    with tempfile.TemporaryDirectory(prefix="ainu-client-") as tmp:
        path = Path(tmp) / "nucleus.arrow"
        write(locs, path)
        return path.read_bytes()


class Client:
    """A connection to an ``ainu-engine serve`` server.

    Parameters
    ----------
    url : str
        ``http://HOST:PORT`` of the server.
    token : str, optional
        The server's bearer token (needed when it was started with ``--token-file``).
    timeout : float
        Seconds to wait for a response.
    retries : int
        Attempts for a request answered 503 (backoff 0.1, 0.2, 0.4 ... s, or the server's
        Retry-After) before :class:`ServiceError` is raised.

    Raises
    ------
    ValueError
        ``url`` is not ``http://HOST:PORT``.

    Examples
    --------
    >>> from ainu_engine.client import Client
    >>> from ainu_engine.io import read
    >>> with Client("http://127.0.0.1:8750") as c:  # doctest: +SKIP
    ...     p = c.classify(read("nucleus.bin"))   # the same Prediction as Classifier.classify
    """

    def __init__(self, url: str = "http://127.0.0.1:8750", *, token: str | None = None,
                 timeout: float = 120.0, retries: int = 6) -> None:  # fmt: skip
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"url must be http://HOST:PORT, got {url!r}")
        self.host, self.port = u.hostname, u.port or 80
        self.token, self.timeout, self.retries = token, float(timeout), int(retries)
        self._conn: http.client.HTTPConnection | None = None
        self._info = None

    # -- plumbing -------------------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def request(self, method: str, path: str, body: bytes | None = None, *,
                content_type: str = "application/json", query: dict | None = None):  # fmt: skip
        """One request (retried on 503 and on a dropped keep-alive connection); the decoded JSON
        (or None for 204), or :class:`ServiceError`."""
        if query:
            path += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        headers = {"Content-Type": content_type}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        delay, busy, reconnects = 0.1, 0, 0
        while True:
            try:
                conn = self._connection()
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (ConnectionError, http.client.HTTPException, OSError) as err:
                self.close()
                reconnects += 1
                if reconnects > 1:  # a second failure is the server's absence, not a stale socket
                    raise ServiceError(0, "unreachable", f"{self.host}:{self.port}: {err}") from err
                continue
            if resp.status == 503 and busy < self.retries:
                busy += 1
                wait = resp.getheader("Retry-After")
                time.sleep(min(float(wait), 5.0) if wait and wait.isdigit() else delay)
                delay = min(2 * delay, 5.0)
                continue
            if resp.status == 204:
                return None
            try:
                doc = json.loads(data) if data else {}
            except ValueError:
                text = data[:200].decode(errors="replace")
                doc = {"error": {"code": "bad_response", "message": text}}
            if resp.status >= 400:
                err = doc.get("error", {}) if isinstance(doc, dict) else {}
                raise ServiceError(resp.status, err.get("code", "error"), err.get("message", ""))
            return doc

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the Classifier's methods ---------------------------------------------------------------
    @property
    def info(self) -> dict:
        """The model's summary (``GET /v1/model``): classes, input, render spec, training data."""
        if self._info is None:
            self._info = self.request("GET", "/v1/model")
        return self._info

    def classify(self, locs, *, roi_nm=None, channel_map: dict | None = None,
                 abstain: bool | float | None = None) -> Prediction:  # fmt: skip
        """Call one nucleus: :class:`~ainu_engine.io.Localizations`, or the path of a
        localization file (sent as it is). ``roi_nm`` is a box (x0, y0, x1, y1) in nm;
        ``abstain`` as for :class:`ainu_engine.Classifier` (the server applies it)."""
        if isinstance(locs, (str, os.PathLike)):
            body = Path(locs).read_bytes()
        elif isinstance(locs, Localizations):
            body = _arrow_bytes(locs)
        else:
            raise TypeError("classify takes Localizations or a file path")
        query = {"roi": _roi_text(roi_nm), "channel_map": _map_text(channel_map),
                 "abstain": _abstain_text(abstain)}  # fmt: skip
        doc = self.request("POST", "/v1/classify", body, content_type="application/octet-stream",
                           query=query)  # fmt: skip
        return Prediction.from_dict(doc)

    def classify_batch(
        self, batch, *, roi_nm=None, channel_map: dict | None = None,
        abstain: bool | float | None = None,
    ) -> list[Prediction]:
        """Call several nuclei in one request (the server infers them together)."""
        rois = list(roi_nm) if roi_nm is not None else [None] * len(batch)
        nuclei = []
        for locs, roi in zip(batch, rois, strict=True):
            doc = {"x_nm": locs.x_nm.tolist(), "y_nm": locs.y_nm.tolist()}
            if locs.channel is not None:
                doc["channel"] = locs.channel.tolist()
            # frames and photons too: the out-of-distribution score's input statistics use them
            for name in ("precision_nm", "frame", "photons"):
                if getattr(locs, name) is not None:
                    doc[name] = getattr(locs, name).tolist()
            if locs.meta.channel_names:
                doc["channel_names"] = {str(k): v for k, v in locs.meta.channel_names.items()}
            if roi is not None:
                doc["roi_nm"] = np.asarray(roi, float).tolist()
            nuclei.append(doc)
        out = self.request("POST", "/v1/classify/batch", json.dumps({"nuclei": nuclei}).encode(),
                           query={"channel_map": _map_text(channel_map),
                                  "abstain": _abstain_text(abstain)})  # fmt: skip
        preds = []
        for r in out["results"]:
            if "error" in r:
                raise ServiceError(400, r["error"]["code"], r["error"]["message"])
            preds.append(Prediction.from_dict(r))
        return preds

    def explain(self, locs, *, window: int | None = None, stride: int | None = None,
                target: str | None = None):  # fmt: skip
        """The occlusion map of one nucleus (``POST /v1/explain``) as an
        :class:`ainu_engine.explain.Attribution` (maps (T, S, S), targets, class names)."""
        from .explain import Attribution

        body = (
            Path(locs).read_bytes() if isinstance(locs, (str, os.PathLike)) else _arrow_bytes(locs)
        )
        d = self.request("POST", "/v1/explain", body, content_type="application/octet-stream",
                         query={"window": window, "stride": stride, "target": target})  # fmt: skip
        classes = self.info["classes"]
        return Attribution(
            np.asarray(d["maps"], np.float32), [classes.index(t) for t in d["targets"]], classes,
            params={"window": d["window"], "stride": d["stride"]},
            output=None if d["output"] is None else np.asarray(d["output"], np.float32),
            seconds=d["seconds"],
        )  # fmt: skip

    def live(self, *, region_nm=None, channel_names: dict | None = None,
             channel_map: dict | None = None, stop_rule=None,
             abstain: bool | float | None = None) -> RemoteLiveNucleus:  # fmt: skip
        """Open a live session on the server (see :class:`ainu_engine.live.LiveNucleus`)."""
        doc = {"roi_nm": None if region_nm is None else np.asarray(region_nm, float).tolist(),
               "channel_names": {str(k): v for k, v in (channel_names or {}).items()},
               "channel_map": channel_map, "stop": _rule_text(stop_rule),
               "abstain": _abstain_text(abstain)}  # fmt: skip
        r = self.request("POST", "/v1/live", json.dumps(doc).encode())
        return RemoteLiveNucleus(self, r["id"])


class RemoteLiveNucleus:
    """A live session on the server, with the methods of :class:`ainu_engine.live.LiveNucleus`.

    Parameters
    ----------
    client : Client
        The connection.
    sid : str
        The session's id on the server.
    """

    def __init__(self, client: Client, sid: str) -> None:
        self.client, self.id = client, sid
        self._closed = False

    def add(self, locs=None, *, x_nm=None, y_nm=None, channel=None, frame=None, precision_nm=None):
        from .live import AddReport

        if locs is None:
            doc = {
                "x_nm": np.asarray(x_nm, float).tolist(),
                "y_nm": np.asarray(y_nm, float).tolist(),
            }
            for key, v in (("channel", channel), ("frame", frame), ("precision_nm", precision_nm)):
                if v is not None:
                    doc[key] = np.asarray(v).tolist()
            body, ctype = json.dumps(doc).encode(), "application/json"
        else:
            body, ctype = _arrow_bytes(locs), "application/octet-stream"
        r = self.client.request(
            "POST", f"/v1/live/{self.id}/localizations", body, content_type=ctype
        )
        return AddReport(r["added"], r["not_finite"], r["outside"], r["unknown_channel"])

    def call(self):
        from .live import LiveCall

        return LiveCall.from_dict(self.client.request("GET", f"/v1/live/{self.id}"))

    def should_stop(self):
        return self.call().stop

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self.client.request("DELETE", f"/v1/live/{self.id}")
            except ServiceError as err:
                if err.status != 404:
                    raise

    def __enter__(self) -> RemoteLiveNucleus:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _roi_text(roi) -> str | None:
    """A box ``x0,y0,x1,y1`` or a polygon ``x,y;x,y;...`` (nm) for the ``roi`` query."""
    if roi is None:
        return None
    a = np.asarray(roi, np.float64)
    if a.shape == (4,):
        return ",".join(f"{v:.6g}" for v in a)
    return ";".join(f"{x:.9g},{y:.9g}" for x, y in a)


def _abstain_text(abstain) -> str | None:
    """``abstain`` as the service reads it (None: not sent, the server's default: off)."""
    if abstain is None or abstain is False:
        return None
    return "true" if abstain is True else f"{float(abstain):g}"


def _map_text(channel_map: dict | None) -> str | None:
    return None if not channel_map else ",".join(f"{k}={v}" for k, v in channel_map.items())


def _rule_text(rule) -> str | None:
    if rule is None:
        return None
    parts = [f"p={rule.p}", f"m={rule.m}", f"min={rule.min_localizations}"]
    if rule.max_frames is not None:
        parts.append(f"max_frames={rule.max_frames}")
    return ",".join(parts)
