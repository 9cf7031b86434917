"""``ainu-engine serve`` end to end on loopback (issue 19): a real server process, the Client,
live sessions over HTTP, errors as 4xx JSON, backpressure (503, nothing dropped), the token, and
a kill -9 under load."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette", reason="serve needs the serve extra (starlette, uvicorn)")
pytest.importorskip("uvicorn", reason="serve needs the serve extra (starlette, uvicorn)")
pytest.importorskip("onnxruntime", reason="serve needs the cpu extra")

from ainu_engine.client import Client, ServiceError  # noqa: E402
from ainu_engine.io import Localizations, read  # noqa: E402
from ainu_engine.live import StopRule  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "examples" / "models" / "hipsc_vs_somatic.small_cnn.SIMULATED.onnx"
NUCLEUS = REPO / "examples" / "screen" / "slide1" / "somatic_0000.bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "ainu_engine", "serve", "--model", str(MODEL),
               "--port", str(self.port), "--device", "cpu", *args]  # fmt: skip
        # the server's output goes to a file: a pipe nobody reads fills and stalls the server
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.output()[-2000:]}")
            try:
                if raw("GET", self.url, "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("server not ready within 90 s")

    def output(self) -> str:
        """What the server has written so far."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def raw(method, url, path, body=None, headers=None):
    """One request without the client's retries: (status, headers, decoded JSON or text)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        ctype = r.getheader("content-type", "")
        if "json" in ctype:
            return r.status, dict(r.getheaders()), json.loads(data)
        return r.status, dict(r.getheaders()), data if "image" in ctype else data.decode()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def nucleus():
    locs = read(NUCLEUS)
    return Localizations(locs.x_nm, locs.y_nm, frame=locs.frame)


def test_classify_equals_the_in_process_call(server, nucleus):
    from ainu_engine import Classifier

    with Classifier.load(MODEL, backend="onnxruntime", device="cpu", render_device="cpu") as clf:
        ref = clf.classify(nucleus)
    with Client(server.url) as c:
        p = c.classify(nucleus)
        assert p.label == ref.label and p.qc == ref.qc
        assert p.probabilities == pytest.approx(ref.probabilities, abs=1e-6)
        assert p.ood_score == pytest.approx(ref.ood_score, abs=1e-4) and p.ood_score is not None
        assert p.ood_reason == ref.ood_reason
        batch = c.classify_batch([nucleus, nucleus])
        assert [q.label for q in batch] == [ref.label] * 2
        assert batch[0].ood_score == pytest.approx(ref.ood_score, abs=1e-4)
        assert c.info["classes"] == ["hiPSC", "somatic"]
        # the bytes of a file, read as read() reads it (an Insight3 .bin needs its pixel size)
        doc = c.request("POST", "/v1/classify", NUCLEUS.read_bytes(),
                        content_type="application/octet-stream",
                        query={"camera_pixel_nm": "160"})  # fmt: skip
        assert doc["label"] == ref.label and doc["model_sha256"]


def test_abstention_and_unfamiliar_nuclei_over_http(server):
    """A localizer with 5x better precision than the training data: flagged unfamiliar in the
    answer; with abstain= the call is undecided (per request and per live session)."""
    locs = read(REPO / "examples" / "screen" / "slide2" / "somatic_0000.csv")
    sharp = locs[np.arange(locs.n)]
    sharp.precision_nm = locs.precision_nm * 0.2
    with Client(server.url) as c:
        p = c.classify(sharp)
        assert "unfamiliar" in p.qc and p.label in ("hiPSC", "somatic")
        assert p.ood_reason.startswith("median precision")
        q = c.classify(sharp, abstain=True)
        assert q.label == "undecided" and q.abstain_reason.startswith("unfamiliar: ")
        assert [r.label for r in c.classify_batch([sharp], abstain=0.8)] == ["undecided"]
        with c.live(stop_rule=StopRule(p=0.5, m=1, min_localizations=0), abstain=True) as s:
            s.add(sharp)
            call = s.call()
        assert call.label == "undecided" and not call.stop.stop
        assert "unfamiliar" in call.qc and call.ood_score > 1
    st, _, doc = raw("POST", server.url, "/v1/classify?abstain=2", b'{"x_nm": [1], "y_nm": [1]}',
                     {"Content-Type": "application/json"})  # fmt: skip
    assert st == 400 and "abstain" in doc["error"]["message"]


def test_explain_over_http_equals_the_in_process_occlusion(server, nucleus):
    from ainu_engine import Classifier
    from ainu_engine.explain import occlusion

    with Classifier.load(MODEL, backend="onnxruntime", device="cpu", render_device="cpu") as clf:
        ref = occlusion(clf, clf.prepare(nucleus).items[0], window=8, stride=4)
    with Client(server.url) as c:
        a = c.explain(nucleus, window=8, stride=4)
        assert a.targets == ref.targets and a.maps.shape == (1, 64, 64)
        np.testing.assert_allclose(a.maps, ref.maps, atol=1e-5)
    body = __import__("ainu_engine.client", fromlist=["_arrow_bytes"])._arrow_bytes(nucleus)
    st, hdr, png = raw("POST", server.url, "/v1/explain?response=png&window=8", body,
                       {"Content-Type": "application/octet-stream"})  # fmt: skip
    assert st == 200 and hdr.get("content-type") == "image/png" and png[:4] == b"\x89PNG"
    st, _, doc = raw("POST", server.url, "/v1/explain?window=0", body,
                     {"Content-Type": "application/octet-stream"})  # fmt: skip
    assert st == 400 and doc["error"]["code"] == "bad_request"


def test_a_live_session_over_http(server, nucleus):
    with (
        Client(server.url) as c,
        c.live(stop_rule=StopRule(p=0.8, m=2, min_localizations=2000)) as s,
    ):
        for start in range(0, nucleus.n, 3000):
            report = s.add(nucleus[start : start + 3000])
            call = s.call()
        assert report.added > 0 and call.label == "somatic" and call.stop.stop
        r = s.add(x_nm=[1e4, float("nan")], y_nm=[1e4, 1e4])
        assert (r.added, r.not_finite) == (1, 1)
    with Client(server.url) as c, pytest.raises(ServiceError) as err:
        c.request("GET", f"/v1/live/{s.id}")  # closed with the with-block
    assert err.value.status == 404


@pytest.mark.parametrize(
    ("body", "ctype", "status", "code"),
    [
        (b"\x00\x01garbage", "application/octet-stream", 400, "UnknownFormatError"),
        (b"ARROW1\x00\x00truncated", "application/octet-stream", 400, "FormatError"),
        (b'{"x_nm": [1, 2], "y_nm": [1]}', "application/json", 400, "bad_request"),
        (b'{"x_nm": [NaN, 2], "y_nm": [1, 2]}', "application/json", 400, "bad_request"),
        (b'{"x_nm": "no", "y_nm": [1]}', "application/json", 400, "bad_request"),
        (b'{"x_nm": null, "y_nm": null}', "application/json", 400, "bad_request"),  # was a 500
        (b"{not json", "application/json", 400, "bad_json"),
        ("WRONG_SCHEMA", "application/octet-stream", 400, "MissingColumnError"),
        (b"", "application/octet-stream", 400, "bad_request"),
    ],
)
def test_bad_requests_are_4xx_json_errors(server, body, ctype, status, code):
    if body == "WRONG_SCHEMA":  # a valid Arrow IPC file without coordinate columns
        import io

        import pyarrow as pa

        buf = io.BytesIO()
        table = pa.table({"a": [1.0, 2.0], "b": [3.0, 4.0]})
        with pa.ipc.new_file(buf, table.schema) as w:
            w.write_table(table)
        body = buf.getvalue()
    st, _, doc = raw("POST", server.url, "/v1/classify", body, {"Content-Type": ctype})
    assert st == status and doc["error"]["code"] == code and "\n" not in doc["error"]["message"]
    assert raw("GET", server.url, "/healthz")[0] == 200  # and the server goes on


def test_unknown_routes_and_sessions(server):
    assert raw("GET", server.url, "/v1/live/0123456789abcdef")[0] == 404
    assert raw("DELETE", server.url, "/v1/live/0123456789abcdef")[0] == 404
    assert raw("GET", server.url, "/v2/classify")[0] == 404


def test_metrics_count_requests_batches_and_sessions(server):
    st, _, text = raw("GET", server.url, "/metrics")
    assert st == 200
    assert 'ainu_requests_total{route="/v1/classify",status="200"}' in text
    assert "ainu_batch_items_bucket" in text and "ainu_live_sessions" in text


def test_limits_backpressure_and_the_token(tmp_path, nucleus):
    token = tmp_path / "token"
    token.write_text("s3cret-token-of-32-characters!!!")
    s = Server("--token-file", str(token), "--max-body-mb", "0.3", "--queue-size", "1",
               "--max-delay-ms", "0", "--max-batch", "1", "--render-threads", "4",
               "--live-sessions", "2")  # fmt: skip
    try:
        assert raw("GET", s.url, "/healthz")[0] == 200  # health needs no token
        st, hdr, doc = raw("GET", s.url, "/v1/model")
        assert st == 401 and doc["error"]["code"] == "unauthorized"
        assert raw("GET", s.url, "/v1/model", headers={"Authorization": "Bearer wrong"})[0] == 401
        auth = {"Authorization": "Bearer s3cret-token-of-32-characters!!!"}
        big = json.dumps({"x_nm": [1.0] * 60000, "y_nm": [1.0] * 60000}).encode()
        st, _, doc = raw(
            "POST", s.url, "/v1/classify", big, {**auth, "Content-Type": "application/json"}
        )
        assert st == 413 and doc["error"]["code"] == "too_large"
        # a full queue answers 503 with Retry-After; every request gets an answer
        small = json.dumps(
            {"x_nm": nucleus.x_nm[:3000].tolist(), "y_nm": nucleus.y_nm[:3000].tolist()}
        )
        statuses, hdrs = [], []

        def fire():
            st, h, _ = raw("POST", s.url, "/v1/classify", small.encode(),
                           {**auth, "Content-Type": "application/json"})  # fmt: skip
            statuses.append(st)
            hdrs.append(h)

        threads = [threading.Thread(target=fire) for _ in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # (whether the queue of one fills depends on timing: the Batcher test below makes it)
        assert len(statuses) == 24 and set(statuses) <= {200, 503} and 200 in statuses
        assert all(
            "Retry-After" in h or "retry-after" in h
            for st, h in zip(statuses, hdrs, strict=True)
            if st == 503
        )
        with Client(s.url, token="s3cret-token-of-32-characters!!!") as c:  # the client retries
            assert c.classify(nucleus).label == "somatic"
            sessions = [c.live(), c.live()]
            with pytest.raises(ServiceError) as err:
                Client(s.url, token="s3cret-token-of-32-characters!!!", retries=0).live()
            assert err.value.status == 503
            for x in sessions:
                x.close()
    finally:
        s.stop()


def test_no_network_without_a_token_and_no_pickled_models(tmp_path):
    base = [sys.executable, "-m", "ainu_engine", "serve", "--port", str(free_port())]
    r = subprocess.run([*base, "--model", str(MODEL), "--host", "0.0.0.0"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "--token-file" in r.stderr
    pt = tmp_path / "model.pt"
    pt.write_bytes(b"not a model")
    r = subprocess.run([*base, "--model", str(pt)], cwd=REPO, capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert r.returncode == 1 and ".onnx model only" in r.stderr


def test_kill_9_under_load_then_a_restarted_server_serves(nucleus):
    s = Server()
    errors, done = [], []

    def load():
        with Client(s.url, retries=0) as c:
            for _ in range(200):
                try:
                    c.classify(nucleus)
                    done.append(1)
                except ServiceError as err:
                    errors.append(err)
                    return

    t = threading.Thread(target=load)
    t.start()
    time.sleep(1.0)
    s.stop(signal.SIGKILL)
    t.join(timeout=60)
    assert errors and errors[0].code == "unreachable"
    s2 = Server()
    try:
        with Client(s2.url) as c:
            assert c.classify(nucleus).label == "somatic"
    finally:
        s2.stop()
    assert os.environ.get("NO_SUCH_VAR") is None and np.isfinite(len(done))


def test_fuzzed_bodies_get_an_answer_never_a_500(server, nucleus):
    """Mutated Arrow IPC nuclei and arbitrary JSON: 200 or a 4xx JSON error, and the server goes
    on serving (hypothesis, fixed seed)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from ainu_engine.client import _arrow_bytes

    good = _arrow_bytes(nucleus[:2000])
    json_values = st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6), inner, max_size=6)
        ),
        max_leaves=20,
    )

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    @given(
        cut=st.integers(0, len(good)), flips=st.lists(st.integers(0, len(good) - 1), max_size=4),
        doc=st.fixed_dictionaries({}, optional={"x_nm": json_values, "y_nm": json_values,
                                                "channel": json_values, "roi_nm": json_values}),
    )  # fmt: skip
    def case(cut, flips, doc):
        b = bytearray(good[:cut] if cut < len(good) else good)
        for i in flips:
            if i < len(b):
                b[i] ^= 0xFF
        for body, ctype in ((bytes(b), "application/octet-stream"),
                            (json.dumps(doc).encode(), "application/json")):  # fmt: skip
            st_, _, resp = raw("POST", server.url, "/v1/classify", body, {"Content-Type": ctype})
            assert st_ == 200 or (400 <= st_ < 500 and "error" in resp), (st_, resp)

    rss0 = rss_mib(server.proc.pid)
    case()
    assert raw("GET", server.url, "/readyz")[0] == 200
    assert rss_mib(server.proc.pid) - rss0 < 150  # memory stays bounded over 120 bad requests


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    pytest.skip("no /proc to measure memory")


def test_a_slow_client_does_not_hold_up_the_others(server, nucleus):
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    try:
        slow.sendall(
            b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100000\r\n\r\n{"x_nm": [1'
        )  # and then nothing
        t0 = time.time()
        with Client(server.url) as c:
            assert c.classify(nucleus).label == "somatic"
        assert time.time() - t0 < 10
    finally:
        slow.close()


def test_a_full_queue_refuses_work_instead_of_buffering_it():
    """The Batcher in front of inference: while a batch is inferred, one more nucleus may wait;
    the next is refused (the server answers it 503 with Retry-After)."""
    from ainu_engine.serve import Batcher, QueueFull

    release = threading.Event()

    class Slow:
        def predict_prepared(self, prepared):
            release.wait(10)
            return [f"call {p.items.shape[0]}" for p in prepared]

    class Item:
        items = np.zeros((1, 1, 2, 2), np.float32)

    b = Batcher(Slow(), max_batch=1, max_delay_s=0.0, queue_size=1)
    try:
        first = b.submit(Item())
        deadline = time.time() + 5
        while b.depth and time.time() < deadline:  # the inference thread has taken the first
            time.sleep(0.01)
        second = b.submit(Item())  # waits in the queue
        with pytest.raises(QueueFull):
            b.submit(Item())
        release.set()
        assert first.result(5) == "call 1" and second.result(5) == "call 1"
    finally:
        release.set()
        b.close()


def test_errors_name_the_request_body_and_query_parameters_not_flags(server, tmp_path):
    """A two-channel upload without the model's channel (polII): the answer names the request
    body (not the server's temporary file) and the query parameter that fixes it (not the
    command's flag)."""
    from ainu_engine.io import Metadata, write
    from ainu_engine.simulate import simulate_nucleus

    s = simulate_nucleus("hiPSC", rng=np.random.default_rng(0), channels=("h3", "dna"))
    two = Localizations(s.x_nm, s.y_nm, channel=s.channel, frame=s.frame,
                        meta=Metadata(channel_names={1: "h3", 2: "dna"}))  # fmt: skip
    write(two, tmp_path / "two.parquet")
    body = (tmp_path / "two.parquet").read_bytes()
    status, _, doc = raw("POST", server.url, "/v1/classify", body,
                         {"content-type": "application/octet-stream"})  # fmt: skip
    assert status == 400
    msg = doc["error"]["message"] if isinstance(doc.get("error"), dict) else json.dumps(doc)
    assert "request body" in msg and "ainu-serve-" not in msg
    assert "--channel-map" not in msg and "channel_map=" in msg
