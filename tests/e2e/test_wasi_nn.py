"""The wasi-nn edge: the component synthesizes in the sandbox (started by `make e2e`
as `kokoro-edge --component target/edge-nn.wasm --nn-model ...`, with no backend URL
it could reach: KOKORO_NN_URL), compared with the native backend (KOKORO_URL)."""
import os
import socket
import time

import httpx
import numpy as np
import pytest

from conftest import transcribe, wav_to_float, wer

NN_URL = os.environ.get("KOKORO_NN_URL")
pytestmark = pytest.mark.skipif(not NN_URL, reason="KOKORO_NN_URL not set (make e2e sets it)")

SENTENCE = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def nn():
    with httpx.Client(base_url=NN_URL, timeout=120) as c:
        yield c


def speech(client, **kw):
    body = {"input": SENTENCE, "voice": "af_heart", "response_format": "pcm", "stream": False}
    body.update(kw)
    return client.post("/v1/audio/speech", json=body)


def pcm(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def lufs(x: np.ndarray) -> float:
    """Loudness by our own meter is checked in Rust; here a plain RMS in dB is
    enough to compare two renderings of the same request."""
    return 20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-12)


def test_same_request_same_audio_through_both_paths(nn, http):
    a = speech(http)
    b = speech(nn)
    assert a.status_code == 200 and b.status_code == 200, (a.text[:200], b.text[:200])
    assert b.headers["x-edge-inference"] == "wasi-nn"
    x, y = pcm(a.content), pcm(b.content)
    assert len(x) == len(y), (len(x), len(y))
    corr = float(np.corrcoef(x, y)[0, 1])
    assert corr > 0.99, corr
    assert abs(lufs(x) - lufs(y)) < 0.2, (lufs(x), lufs(y))
    # Duration header agrees with the body.
    assert int(b.headers["x-audio-duration-ms"]) == len(y) * 1000 // 24000


def test_streamed_wav_is_intelligible_and_arrives_in_chunks(nn):
    body = {"input": SENTENCE + " It costs $5 today.", "voice": "af_heart", "response_format": "wav"}
    t0 = time.perf_counter()
    with nn.stream("POST", "/v1/audio/speech", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "audio/wav"
        assert "x-time-to-first-audio-ms" in r.headers
        chunks = [(time.perf_counter() - t0, c) for c in r.iter_raw() if c]
    data = b"".join(c for _, c in chunks)
    assert data[:4] == b"RIFF"
    # More than one write: the first chunk left before the whole was synthesized.
    assert chunks[0][0] < chunks[-1][0]
    x = wav_to_float(data)
    assert 2.0 < len(x) / 24000 < 8.0
    hyp = transcribe(x)
    assert wer("the quick brown fox jumps over the lazy dog it costs five dollars today", hyp) <= 0.25, hyp


def test_flac_streams(nn):
    r = speech(nn, response_format="flac", stream=True)
    assert r.status_code == 200 and r.content[:4] == b"fLaC" and len(r.content) > 5000


@pytest.mark.parametrize(
    "body,status,code,param",
    [
        ({"response_format": "mp3"}, 422, "unsupported_format", "response_format"),
        ({"stream_format": "sse", "response_format": "pcm", "stream": True}, 422, "unsupported_format", "stream_format"),
        ({"lang_code": "es"}, 422, "unsupported_language", "lang_code"),
        ({"voice": "af_nope"}, 400, "voice_not_found", "voice"),
        ({"speed": 9}, 400, "invalid_value", "speed"),
        ({"input": "!!! ..."}, 422, "no_speakable_text", "input"),
    ],
)
def test_errors_in_the_contract_shape(nn, http, body, status, code, param):
    r = speech(nn, **body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert (err["code"], err["param"]) == (code, param)
    assert set(err) == {"message", "type", "param", "code"}
    if code not in ("unsupported_format",):
        # Same validation as the backend, byte for byte.
        assert speech(http, **body).content == r.content


def test_a_client_that_leaves_mid_stream_does_not_wedge_the_instance(nn):
    host, port = NN_URL.removeprefix("http://").split(":")
    long = " ".join([SENTENCE] * 16)
    payload = ('{"input": "%s", "voice": "af_heart", "response_format": "pcm"}' % long).encode()
    s = socket.create_connection((host, int(port)), timeout=30)
    s.sendall(
        b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + b"Content-Length: %d\r\n\r\n" % len(payload)
        + payload
    )
    assert s.recv(64).startswith(b"HTTP/1.1 200")
    s.close()
    t0 = time.perf_counter()
    r = speech(nn, input="Still here.")
    assert r.status_code == 200 and len(r.content) > 10000
    # The abandoned paragraph (~50 s of audio, ~15 s of work) was not synthesized to the end first.
    assert time.perf_counter() - t0 < 6.0


@pytest.mark.parametrize("path", ["/v1/models", "/v1/models/tts-1", "/v1/models/nope", "/v1/audio/voices"])
def test_info_routes_answered_locally_like_the_backend(nn, http, path):
    a, b = http.get(path), nn.get(path)
    assert (a.status_code, a.json()) == (b.status_code, b.json())


def test_unknown_words_are_spoken_in_the_sandbox_too(nn, http):
    """The out-of-vocabulary fallback runs inside the component: names misaki does
    not know make the audio longer, and both paths make the same audio."""
    names = speech(nn, input="Kokoro runs on Kubernetes with PostgreSQL and Nguyen.")
    bare = speech(nn, input="Runs on with and.")
    assert names.status_code == 200 and bare.status_code == 200, names.text[:200]
    assert names.headers["x-edge-inference"] == "wasi-nn"
    extra = len(names.content) - len(bare.content)
    assert extra > 2 * 24000 * 1, f"only {extra / 48000:.2f} s more audio for four names"
    native = speech(http, input="Kokoro runs on Kubernetes with PostgreSQL and Nguyen.")
    assert native.content == names.content


def test_a_504_stops_the_warm_instance_s_work():
    """The warm instance that took a request whose head timed out is stopped (epoch
    interruption), so the next request does not wait behind synthesis nobody reads."""
    import pathlib
    import subprocess
    from test_edge import free_port, start_edge

    assets = pathlib.Path(os.environ.get("KOKORO_ASSETS_DIR") or pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "kokoro-edge")
    model = assets / "kokoro-v1.0.int8-fconv.onnx"
    p, url = start_edge("--nn-model", str(model), "--timeout-secs", "8", "--backend-url", f"http://127.0.0.1:{free_port()}", component="edge-nn.wasm")
    try:
        with httpx.Client(base_url=url, timeout=120) as c:
            assert speech(c, input="Ready now.").status_code == 200  # warm
            long = " ".join(["The warm instance reads this long paragraph to nobody at all."] * 30)
            t0 = time.monotonic()
            r = speech(c, input=long)
            assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout", r.text[:200]
            assert time.monotonic() - t0 < 12
            # ~110 s of audio: ~30 s more of synthesis on 2 cores had the instance kept
            # going, and this request would wait behind it (504 again). A fresh
            # instance answers it, its dictionaries loaded anew, within the time-out.
            t1 = time.monotonic()
            r = speech(c, input="Next, please.")
            assert r.status_code == 200, (r.text[:200], time.monotonic() - t1)
    finally:
        p.kill()
