"""The edge component in the local wasmtime host, in front of the real backend."""
import os
import pathlib
import socket
import subprocess
import time

import httpx
import pytest

EDGE = os.environ.get("KOKORO_EDGE_URL", "http://127.0.0.1:3000")
ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def edge():
    with httpx.Client(base_url=EDGE, timeout=120) as c:
        yield c


def test_health_and_request_id(edge):
    r = edge.get("/health", headers={"x-request-id": "edge-trace-1"})
    assert r.status_code == 200 and r.json()["tier"] == "edge"
    assert r.headers["x-request-id"] == "edge-trace-1"


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_speech_is_forwarded_for_every_format(edge, fmt, fresh):
    body = {"input": f"Hello through the edge, take {fresh}.", "response_format": fmt, "stream": False}
    r = edge.post("/v1/audio/speech", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("audio/")
    assert r.headers["x-cache"] == "miss"
    assert len(r.content) > 2000


def test_streaming_passes_through(edge, fresh):
    t = time.perf_counter()
    first = None
    total = 0
    with edge.stream("POST", "/v1/audio/speech", json={"input": f"First a short part, take {fresh}. " + "Then a much longer sentence follows it, " * 4 + "to the end.", "response_format": "pcm"}) as r:
        assert r.status_code == 200
        for chunk in r.iter_raw():
            if chunk and first is None:
                first = time.perf_counter() - t
            total += len(chunk)
    end = time.perf_counter() - t
    assert first is not None and total > 48000
    # The first audio arrives well before the whole answer: no buffering at the edge.
    assert first < end * 0.6, f"first bytes at {first:.2f}s of {end:.2f}s"


@pytest.mark.parametrize(
    "body,status,code",
    [
        ({"input": ""}, 400, "empty_input"),
        ({"input": "hi", "voice": "nobody"}, 400, "voice_not_found"),
        ({"input": "hi", "speed": 10}, 400, "invalid_value"),
        ({"input": "hi", "stream_format": "sse", "stream": False}, 422, "unsupported_combination"),
        ([1, 2], 400, "invalid_json"),
    ],
)
def test_invalid_requests_get_the_backend_s_exact_error_without_reaching_it(edge, http, body, status, code):
    before = metric(http, "POST", "/v1/audio/speech", status)
    e = edge.post("/v1/audio/speech", json=body)
    assert e.status_code == status and e.json()["error"]["code"] == code
    # Same mistake, byte-identical body at the backend.
    b = http.post("/v1/audio/speech", json=body)
    assert b.content == e.content
    # The edge's request never reached the backend: only our direct one is counted.
    assert metric(http, "POST", "/v1/audio/speech", status) == before + 1


def metric(http, method, route, status):
    text = http.get("/metrics").text
    key = f'kokoro_http_requests_total{{method="{method}",route="{route}",status="{status}"}} '
    for line in text.splitlines():
        if line.startswith(key):
            return int(line.split()[-1])
    return 0


def test_unknown_route_and_method(edge):
    assert edge.get("/nope").json()["error"]["code"] == "not_found"
    r = edge.get("/v1/audio/speech")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert r.headers["allow"] == "POST"
    assert edge.delete("/v1/models").headers["allow"] == "GET"
    r = edge.post("/v1/audio/speech", content=b"{}", headers={"content-type": "text/plain"})
    assert r.status_code == 415


def test_forwarded_info_routes(edge):
    assert "tts-1" in [m["id"] for m in edge.get("/v1/models").json()["data"]]
    assert edge.get("/v1/audio/voices").json()["aliases"]["alloy"] == "af_alloy"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_edge(*args, component="edge-wasi.wasm"):
    port = free_port()
    p = subprocess.Popen([str(ROOT / "target/debug/kokoro-edge"), "--listen", f"127.0.0.1:{port}", "--component", str(ROOT / "target" / component), *args], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            httpx.get(f"{url}/health", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.5)
    return p, url


def test_outbound_calls_outside_the_allow_list_are_refused(url):
    # The component is told to use the real backend, but only another host is allowed.
    p, edge_url = start_edge("--backend-url", url, "--allow", "127.0.0.1:9")
    try:
        r = httpx.post(f"{edge_url}/v1/audio/speech", json={"input": "hi"}, timeout=30)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "upstream_unavailable"
        assert r.headers["retry-after"]
    finally:
        p.kill()


def test_backend_down_gives_503_with_retry_after():
    port = free_port()  # nothing listens there
    p, edge_url = start_edge("--backend-url", f"http://127.0.0.1:{port}")
    try:
        r = httpx.post(f"{edge_url}/v1/audio/speech", json={"input": "hi"}, timeout=30)
        assert r.status_code == 503 and r.headers["retry-after"]
        assert r.json()["error"]["code"] == "upstream_unavailable"
        # Validation still happens at the edge with the backend gone.
        r = httpx.post(f"{edge_url}/v1/audio/speech", json={"input": ""}, timeout=30)
        assert r.status_code == 400
    finally:
        p.kill()


@pytest.mark.parametrize("stream", [False, True])
def test_cache_miss_then_hit_returns_identical_bytes(edge, http, stream, fresh):
    body = {"input": f"The cache remembers this, stream {stream}, take {fresh}.", "response_format": "mp3", "stream": stream}
    first = edge.post("/v1/audio/speech", json=body)
    assert first.status_code == 200 and first.headers["x-cache"] == "miss"
    before = metric(http, "POST", "/v1/audio/speech", 200)
    second = edge.post("/v1/audio/speech", json=body)
    assert second.status_code == 200 and second.headers["x-cache"] == "hit"
    assert second.content == first.content
    assert metric(http, "POST", "/v1/audio/speech", 200) == before, "a hit must not reach the backend"
    # The normalized request is the key: "5" and "five" share an entry.
    edge.post("/v1/audio/speech", json={"input": "I have 5 apples.", "stream": False})
    again = edge.post("/v1/audio/speech", json={"input": "I have five apples.", "stream": False})
    assert again.headers["x-cache"] == "hit"


def test_cache_hits_survive_a_dead_backend(url, tmp_path):
    kv = str(tmp_path / "kv")
    p, edge_url = start_edge("--backend-url", url, "--kv-dir", kv, component="edge-spin.wasm")
    try:
        body = {"input": "Served even when the backend is down.", "stream": False}
        assert httpx.post(f"{edge_url}/v1/audio/speech", json=body, timeout=60).headers["x-cache"] == "miss"
    finally:
        p.kill()
    dead = f"http://127.0.0.1:{free_port()}"
    p, edge_url = start_edge("--backend-url", dead, "--kv-dir", kv, component="edge-spin.wasm")
    try:
        r = httpx.post(f"{edge_url}/v1/audio/speech", json=body, timeout=30)
        assert r.status_code == 200 and r.headers["x-cache"] == "hit"
        r = httpx.post(f"{edge_url}/v1/audio/speech", json={"input": "Not cached."}, timeout=30)
        assert r.status_code == 503 and r.headers["retry-after"]
    finally:
        p.kill()


def test_a_broken_store_degrades_to_pass_through(url, tmp_path):
    not_a_dir = tmp_path / "kv"
    not_a_dir.write_text("a file where the store's directory should be")
    p, edge_url = start_edge("--backend-url", url, "--kv-dir", str(not_a_dir), component="edge-spin.wasm")
    try:
        for _ in range(2):
            r = httpx.post(f"{edge_url}/v1/audio/speech", json={"input": "No store, no problem.", "stream": False}, timeout=60)
            assert r.status_code == 200 and r.headers["x-cache"] == "miss"
            assert len(r.content) > 2000
    finally:
        p.kill()


def test_the_api_key_rule_is_the_backend_s(url):
    """One rule in both tiers (kokoro_core::boundary): the Bearer scheme is
    case-insensitive (RFC 9110), X-API-Key works, /health and /metrics stay open,
    and every other path, unknown ones too, needs the key. Before, the edge took
    only `Bearer ` (a key the backend accepted as `bearer ` got 401) and answered
    unknown paths 404 without a key where the backend said 401."""
    p, edge_url = start_edge("--backend-url", url, "--api-keys", "k1,k2")
    try:
        with httpx.Client(base_url=edge_url, timeout=60) as c:
            r = c.get("/v1/models")
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
            for auth in ({"authorization": "Bearer k1"}, {"authorization": "bearer k2"},
                         {"authorization": "BEARER  k1"}, {"x-api-key": "k2"}):
                assert c.get("/v1/models", headers=auth).status_code == 200, auth
            assert c.get("/v1/models", headers={"authorization": "Bearer k3"}).status_code == 401
            assert c.get("/v1/models", headers={"authorization": "k1"}).status_code == 401
            assert c.get("/health").status_code == 200
            assert c.get("/nope").status_code == 401
            assert c.get("/nope", headers={"x-api-key": "k1"}).status_code == 404
            assert c.post("/health").status_code == 405
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_the_cache_keeps_one_copy_with_its_type_within_its_bound(url, tmp_path, fresh):
    kv = tmp_path / "kv"
    p, edge_url = start_edge("--backend-url", url, "--kv-dir", str(kv), "--kv-max-mib", "1", "--api-keys", "k", component="edge-spin.wasm")
    auth = {"authorization": "Bearer k"}
    try:
        with httpx.Client(base_url=edge_url, timeout=120, headers=auth) as c:
            sse = {"input": f"Events are cached as events, take {fresh}.", "stream_format": "sse", "response_format": "mp3"}
            first = c.post("/v1/audio/speech", json=sse)
            assert first.headers["x-cache"] == "miss" and first.headers["content-type"].startswith("text/event-stream")
            hit = c.post("/v1/audio/speech", json=sse)
            assert hit.headers["x-cache"] == "hit" and hit.content == first.content
            assert hit.headers["content-type"].startswith("text/event-stream"), hit.headers
            # Behind API keys a shared cache must not keep the answer.
            assert hit.headers["cache-control"].startswith("private"), hit.headers
            # One copy of the body: the request-as-sent key is a small alias.
            sizes = sorted(f.stat().st_size for f in kv.iterdir() if not f.name.startswith("."))
            assert len(sizes) == 2 and sizes[0] < 200 and sizes[1] > len(first.content), sizes
            wav = {"input": f"A whole wave file, take {fresh}.", "response_format": "wav", "stream": False}
            c.post("/v1/audio/speech", json=wav)
            hit = c.post("/v1/audio/speech", json=wav)
            assert hit.headers["x-cache"] == "hit" and hit.headers["content-type"] == "audio/wav"
            # Fill past the 1 MiB bound: the store evicts and stays under it.
            for i in range(6):
                r = c.post("/v1/audio/speech", json={"input": f"{PARAGRAPH_FILL} Number {i}, take {fresh}.", "response_format": "wav", "stream": False})
                assert r.status_code == 200
            total = sum(f.stat().st_size for f in kv.iterdir())
            assert total <= 1 << 20, total
            assert c.post("/v1/audio/speech", json=wav).headers["x-cache"] == "miss"  # evicted first
    finally:
        p.kill()


PARAGRAPH_FILL = "The store keeps what was asked for most recently and lets the oldest answers go when it is full."


def test_dev_routes_are_forwarded_only_when_enabled(url):
    # The suite's backend serves /dev/* (make starts it with --dev-routes); an edge
    # started without the flag must not forward them.
    assert httpx.post(f"{url}/dev/phonemize", json={"text": "hi"}, timeout=30).status_code == 200
    p, edge_url = start_edge("--backend-url", url, "--kv-memory", component="edge-spin.wasm")
    try:
        for path, body in [("/dev/phonemize", {"text": "hi"}), ("/dev/generate_from_phonemes", {"phonemes": "hˈI"})]:
            r = httpx.post(f"{edge_url}{path}", json=body, timeout=30)
            assert r.status_code == 404, (path, r.status_code, r.text[:200])
            assert r.json()["error"]["code"] == "not_found"
        assert httpx.post(f"{edge_url}/v1/audio/speech", json={"input": "Still speaks.", "stream": False}, timeout=60).status_code == 200
    finally:
        p.kill()
