"""Faults under load: the backend killed and restarted while the edge serves, clients
that disconnect mid-stream, slow readers. Each test starts its own servers on free
loopback ports; every loop is bounded in count and time."""
import re
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


def start_backend(port):
    p = subprocess.Popen([str(BACKEND), "serve", "--listen", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
