"""Faults under load: the backend killed and restarted while the edge serves, clients
that disconnect mid-stream, slow readers. Each test starts its own servers on free
loopback ports; every loop is bounded in count and time."""
import os
import re
import select
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx

from test_edge import free_port, start_edge

ROOT = Path(__file__).resolve().parents[2]
BACKEND = ROOT / "target/debug/kokoro-backend"
PARAGRAPH = " ".join(["The edge keeps serving while the backend restarts behind it."] * 10)


def start_backend(port, *extra):
    p = subprocess.Popen([str(BACKEND), "serve", "--listen", f"127.0.0.1:{port}", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return p, url
        except httpx.TransportError:
            time.sleep(0.3)
    p.kill()
    raise AssertionError("backend did not start")


def counter(base, name):
    text = httpx.get(f"{base}/metrics", timeout=10).text
    m = re.search(rf"^{name} (\d+)", text, re.M)
    return int(m.group(1)) if m else 0


def test_backend_killed_and_restarted_under_load():
    port = free_port()
    backend, url = start_backend(port)
    edge, edge_url = start_edge("--backend-url", url, "--kv-memory", component="edge-spin.wasm")
    cached = {"input": "This answer is cached before the outage.", "stream": False}
    results, stop = [], threading.Event()

    def load():
        with httpx.Client(timeout=30) as c:
            for i in range(400):  # bounded
                if stop.is_set():
                    return
                r = c.post(f"{edge_url}/v1/audio/speech", json={"input": f"Miss number {i}.", "stream": False})
                results.append((time.monotonic(), r.status_code, r.headers.get("retry-after")))
                time.sleep(0.05)

    try:
        assert httpx.post(f"{edge_url}/v1/audio/speech", json=cached, timeout=60).status_code == 200
        t = threading.Thread(target=load)
        t.start()
        time.sleep(2)
        backend.kill()
        backend.wait()
        killed_at = time.monotonic()
        # While the backend is down: misses get 503 + Retry-After, hits keep flowing.
        time.sleep(1.5)
        hit = httpx.post(f"{edge_url}/v1/audio/speech", json=cached, timeout=10)
        assert hit.status_code == 200 and hit.headers["x-cache"] == "hit"
        backend, _ = start_backend(port)
        restarted_at = time.monotonic()
        time.sleep(3)
        stop.set()
        t.join(timeout=60)
        down = [r for r in results if killed_at + 0.5 < r[0] < restarted_at]
        assert down and all(s == 503 and ra for _, s, ra in down), down[:5]
        after = [r for r in results if r[0] > restarted_at + 1]
        assert after and all(s == 200 for _, s, _ in after), after[:5]
        # Nothing but 200 and 503 at any time: no 500s, no hangs.
        assert {s for _, s, _ in results} <= {200, 503}
    finally:
        stop.set()
        edge.kill()
        backend.kill()


def test_disconnects_stop_synthesis_and_slow_readers_do_not_block_others():
    port = free_port()
    backend, url = start_backend(port)
    try:
        before = counter(url, "kokoro_client_disconnects_total") + counter(url, "kokoro_cancelled_jobs_total")
        chunks_before = counter(url, "kokoro_chunks_total")
        # A client that leaves after the first bytes of a long stream.
        body = ('{"input": "%s", "response_format": "pcm"}' % PARAGRAPH).encode()
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        assert s.recv(64).startswith(b"HTTP/1.1 200")
        s.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and counter(url, "kokoro_client_disconnects_total") + counter(url, "kokoro_cancelled_jobs_total") == before:
            time.sleep(0.2)
        assert counter(url, "kokoro_client_disconnects_total") + counter(url, "kokoro_cancelled_jobs_total") > before
        # The paragraph has ~10 chunks; the abandoned stream stopped well short of them.
        time.sleep(2)
        assert counter(url, "kokoro_chunks_total") - chunks_before < 8

        # A slow reader: opens a long stream and reads one small piece per second.
        slow = socket.create_connection(("127.0.0.1", port), timeout=60)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        assert slow.recv(64).startswith(b"HTTP/1.1 200")
        # Others are served meanwhile, in normal time.
        t0 = time.monotonic()
        r = httpx.post(f"{url}/v1/audio/speech", json={"input": "Not blocked.", "response_format": "pcm", "stream": False}, timeout=60)
        assert r.status_code == 200 and len(r.content) > 10000
        assert time.monotonic() - t0 < 10
        slow.recv(1024)
        slow.close()
    finally:
        backend.kill()


# Short time-outs for the slow-client tests (the defaults are 10 / 30 / 30 s).
LIMITS = ["--header-timeout-secs", "2", "--body-timeout-secs", "2", "--write-timeout-secs", "2"]


def host_port(base):
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


def readable(sock, secs):
    return bool(select.select([sock], [], [], secs)[0])


def trickle(sock, data, gap, limit):
    """Send `data` a byte at a time every `gap` s; stop when the server answers or
    closes. Returns (seconds taken, what came back) or None after `limit` s."""
    t0 = time.monotonic()
    for b in data:
        if time.monotonic() - t0 > limit:
            return None
        try:
            sock.send(bytes([b]))
        except OSError:
            return time.monotonic() - t0, b""
        if readable(sock, gap):
            try:
                got = sock.recv(4096)
            except OSError:
                got = b""
            return time.monotonic() - t0, got
    return None


def test_a_slow_head_or_body_is_cut_off_on_both_servers():
    port = free_port()
    backend, url = start_backend(port, *LIMITS)
    edge, edge_url = start_edge("--backend-url", url, "--kv-memory", *LIMITS)
    try:
        for base in (url, edge_url):
            # Slowloris: a head that never ends, one byte every 0.25 s.
            s = socket.create_connection(host_port(base), timeout=10)
            head = b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 200
            r = trickle(s, head, 0.25, 20)
            assert r is not None and r[0] < 6, (base, r)
            s.close()
            # A body trickled in after a complete head: 408 in the contract's shape.
            s = socket.create_connection(host_port(base), timeout=10)
            s.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 300\r\n\r\n{")
            r = trickle(s, b'"input": "' + b"a" * 280, 0.25, 20)
            assert r is not None and r[0] < 6, (base, r)
            assert r[1].startswith(b"HTTP/1.1 408"), (base, r[1][:200])
            assert b'"code":"request_timeout"' in r[1], r[1]
            s.close()
            # An idle kept-alive connection is closed too; a prompt client is served.
            s = socket.create_connection(host_port(base), timeout=10)
            assert readable(s, 6) and s.recv(10) == b"", base
            s.close()
            assert httpx.get(f"{base}/health", timeout=5).status_code == 200
    finally:
        edge.kill()
        backend.kill()


def admitted(url):
    return httpx.get(f"{url}/status", timeout=10).json()["queue"]["admitted"]


def stalled_stream(base):
    """A long streamed request whose client reads the head and then stops reading."""
    body = ('{"input": "%s", "response_format": "pcm"}' % (PARAGRAPH * 3)[:4000]).encode()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(60)
    s.connect(host_port(base))
    s.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert s.recv(64).startswith(b"HTTP/1.1 200")
    return s


def test_a_client_that_stops_reading_loses_its_stream_and_its_permit():
    port = free_port()
    backend, url = start_backend(port, *LIMITS, "--queue-capacity", "2")
    edge, edge_url = start_edge("--backend-url", url, "--kv-memory", *LIMITS)
    try:
        before = counter(url, "kokoro_slow_clients_total")
        held = [stalled_stream(url), stalled_stream(url)]
        assert admitted(url) == 2
        # Both permits come back at the write deadline (not when the clients leave).
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and (admitted(url) > 0 or counter(url, "kokoro_slow_clients_total") < before + 2):
            time.sleep(0.5)
        assert admitted(url) == 0
        assert counter(url, "kokoro_slow_clients_total") >= before + 2
        r = httpx.post(f"{url}/v1/audio/speech", json={"input": "Served again.", "stream": False}, timeout=60)
        assert r.status_code == 200
        # Through the edge: its host drops the stalled client, and the backend's
        # stream behind it ends, so the backend's permit comes back too.
        held.append(stalled_stream(edge_url))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and admitted(url) > 0:
            time.sleep(0.5)
        assert admitted(url) == 0
        for s in held:
            s.close()
    finally:
        edge.kill()
        backend.kill()


def test_costly_requests_are_refused_on_every_tier(url):
    pauses = "Hi. " + "[pause:10s]" * 372
    digits = "1234567890 " * 372
    tiers = [url, os.environ.get("KOKORO_EDGE_URL"), os.environ.get("KOKORO_NN_URL")]
    for base in [t for t in tiers if t]:
        for text in (pauses, digits):
            r = httpx.post(f"{base}/v1/audio/speech", json={"input": text, "response_format": "wav", "stream": False}, timeout=60)
            assert r.status_code == 413, (base, r.status_code, r.text[:200])
            assert r.json()["error"]["code"] == "request_too_costly", r.text


def test_the_backend_reports_its_decoder_pace_against_what_the_windows_keep_up_with(url):
    """On the real model: the warm decode at start, then the fastest decode of any
    request, against the pace the streamed windows keep a player fed at."""
    text = httpx.get(f"{url}/metrics", timeout=10).text

    def gauge(name):
        m = re.search(rf"^{name} ([0-9.]+)$", text, re.M)
        assert m, f"{name} missing from /metrics"
        return float(m.group(1))

    pace = gauge("kokoro_decoder_pace_ratio")
    # A 2-core CPU decodes a 25 ms frame in 5-15 ms; anything outside 1-300% is a unit slip.
    assert 0.01 < pace < 3.0, pace
    # The default windows (16 speech frames, then doubling with 8 of context) keep a
    # player fed to ~27% of real time (windows::safe_pace).
    assert 0.25 < gauge("kokoro_stream_windows_safe_pace_ratio") < 0.30
