"""Every format, streamed and not, arrives whole and decodes with a standard decoder
(FFmpeg, through PyAV), for generated texts: lengths, pauses, punctuation. Both
synthesis paths: the backend (all six formats) and the wasi-nn edge (wav, pcm,
flac). A seeded generator keeps the set the same from run to run."""
import io
import os
import random

import av
import httpx
import numpy as np
import pytest

FORMATS = ("mp3", "opus", "aac", "flac", "wav")
PURE = ("flac", "wav", "pcm")
WORDS = ["hello", "there", "test", "the", "quick", "brown", "fox", "42", "$3.50", "Dr.", "ok", "format"]
SEPS = [" ", ", ", ". ", "! ", "? ", "; ", " [pause:0.2s] "]


def texts(n=3, seed=12):
    rng = random.Random(seed)
    out = ["Hello there, this is a test."]  # the sentence that cut streamed FLAC short
    for _ in range(n - 1):
        k = rng.randint(1, 14)
        out.append("".join(rng.choice(WORDS) + rng.choice(SEPS) for _ in range(k)).strip())
    return out


def decoded_seconds(fmt, data):
    if fmt == "pcm":
        assert len(data) % 2 == 0
        return len(data) / 2 / 24000
    container = av.open(io.BytesIO(data), format={"aac": "aac", "opus": "ogg"}.get(fmt, fmt))
    n = 0
    for frame in container.decode(audio=0):
        a = frame.to_ndarray()
        assert np.isfinite(a).all()
        n += frame.samples / frame.sample_rate
    container.close()
    return n


def fetch(base, text, fmt, stream):
    body = {"model": "tts-1", "input": text, "voice": "af_heart", "response_format": fmt, "stream": stream}
    with httpx.Client(base_url=base, timeout=180) as c:
        with c.stream("POST", "/v1/audio/speech", json=body) as r:
            assert r.status_code == 200, r.read()
            data = b"".join(r.iter_bytes())  # raises if the transfer ends early
            want = r.headers.get("x-audio-duration-ms")
    return data, want


def check(base, text, fmt, stream):
    data, want_ms = fetch(base, text, fmt, stream)
    secs = decoded_seconds(fmt, data)
    assert secs > 0.3, f"{fmt} stream={stream}: {secs:.2f} s decoded for {text!r}"
    if want_ms is not None:  # whole answers say how long they are
        # Lossy codecs add priming/padding; pcm/wav/flac are exact within a FLAC pad.
        tol = 0.002 if fmt in PURE else 0.15  # AAC: 2048 priming + up to 1023 padding samples
        assert abs(secs - int(want_ms) / 1000) <= tol + 0.001, (fmt, secs, want_ms, text)
    return secs


def check_all(base, text, formats):
    lengths = {(fmt, stream): check(base, text, fmt, stream) for fmt in formats for stream in (True, False)}
    # A streamed answer is cut where the whole one is not, so it has its own length;
    # every format's streamed answer decodes to the streamed PCM's length.
    ref = lengths[("pcm", True)]
    for fmt in formats:
        tol = 0.002 if fmt in PURE else 0.15  # AAC: 2048 priming + up to 1023 padding samples
        assert abs(lengths[(fmt, True)] - ref) <= tol + 0.001, (fmt, lengths, text)


@pytest.mark.parametrize("text", texts())
def test_backend_every_format_decodes_whole(url, text):
    check_all(url, text, FORMATS + ("pcm",))


@pytest.mark.parametrize("text", texts())
def test_wasi_nn_every_format_decodes_whole(text):
    nn = os.environ.get("KOKORO_NN_URL")
    if not nn:
        pytest.skip("KOKORO_NN_URL not set")
    check_all(nn, text, PURE)
