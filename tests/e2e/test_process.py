"""The binary as a user runs it: `say`, and graceful shutdown of `serve`."""
import os
import pathlib
import signal
import socket
import subprocess
import threading
import time

import httpx

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = ROOT / "target" / "debug" / "kokoro-backend"


def test_say_writes_a_file(tmp_path):
    out = tmp_path / "hello.wav"
    r = subprocess.run([str(BIN), "say", "Hello from the command line.", "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    assert data[:4] == b"RIFF" and len(data) > 24000
    assert "100%" in r.stderr


def test_say_rejects_bad_input(tmp_path):
    r = subprocess.run([str(BIN), "say", "hi", "--voice", "nobody", "-o", str(tmp_path / "x.mp3")], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "Unknown voice" in r.stderr


def test_serve_rejects_out_of_range_decoder_windows():
    for flag in ("--window-lead-frames", "--window-context-frames"):
        r = subprocess.run([str(BIN), "serve", "--listen", "127.0.0.1:0", flag, "65"], capture_output=True, text=True, timeout=60)
        assert r.returncode != 0, flag
        assert "--window-lead-frames <= 64" in r.stderr, r.stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_finishes_in_flight_requests():
    port = free_port()
    proc = subprocess.Popen([str(BIN), "serve", "--listen", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        result = {}

        def long_request():
            r = httpx.post(f"{url}/v1/audio/speech", json={"input": "This request is in flight when the server is told to stop. " * 3, "response_format": "wav", "stream": False}, timeout=120)
            result["status"], result["len"] = r.status_code, len(r.content)

        t = threading.Thread(target=long_request)
        t.start()
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        t.join(120)
        assert result.get("status") == 200, result
        assert result["len"] > 48000 * 3
        assert proc.wait(timeout=60) == 0
        # New connections are refused after shutdown.
        try:
            httpx.get(f"{url}/health", timeout=2)
            raise AssertionError("server still answering")
        except httpx.TransportError:
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
