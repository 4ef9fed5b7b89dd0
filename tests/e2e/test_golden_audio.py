"""The same request gives byte-identical audio across refactors, on both synthesis
paths (the backend and the wasi-nn edge), for a fixed set of requests covering every
format, streamed and not.

The digests in golden_audio.json were recorded from the servers as they were before
the pipeline was unified (issue 12). A change that is meant to change the audio
(a new G2P rule, a new model, a new ONNX Runtime) re-records them on purpose:
`KOKORO_GOLDEN_UPDATE=1 make e2e`, and says why in its commit.

ONNX Runtime on CPU is deterministic for a fixed thread count and instruction set,
not across CPUs (an AMD EPYC and an Intel Xeon make different bits), so the digests
are kept per machine (CPU model and core count). A machine without its own set fails
and says how to record one: record it from the build before a change, so the set
still says what the audio was."""
import hashlib
import json
import os
import pathlib
import platform

import httpx
import pytest

GOLDEN = pathlib.Path(__file__).with_name("golden_audio.json")
TEXT = "Testing every format, one more time. [pause:0.3s] Numbers too: 42 and $3.50!"
PURE = ("wav", "pcm", "flac")
FORMATS = ("mp3", "opus", "aac") + PURE
CASES = [(f, s) for f in FORMATS for s in (True, False)]


def body(fmt, stream):
    return {"model": "tts-1", "input": TEXT, "voice": "af_heart", "response_format": fmt, "stream": stream}


def digest(base, fmt, stream):
    with httpx.Client(base_url=base, timeout=180) as c:
        r = c.post("/v1/audio/speech", json=body(fmt, stream))
    assert r.status_code == 200, r.text
    # Prefixed: a bare hex digest reads as a secret to detect-secrets.
    return "sha256:" + hashlib.sha256(r.content).hexdigest()


def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def load():
    return json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}


def machine():
    return f"{cpu()} x{os.cpu_count()}"


def record(path, key, value):
    data = load()
    data.setdefault("text", TEXT)
    data.setdefault("machines", {}).setdefault(machine(), {}).setdefault(path, {})[key] = value
    GOLDEN.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def check(path, base, fmt, stream):
    key = f"{fmt}-{'stream' if stream else 'whole'}"
    got = digest(base, fmt, stream)
    if os.environ.get("KOKORO_GOLDEN_UPDATE") == "1":
        record(path, key, got)
        return
    data = load()
    assert data.get("text") == TEXT, "the golden text changed: re-record"
    ours = data.get("machines", {}).get(machine())
    assert ours is not None, (
        f"no golden digests for this machine ({machine()}; recorded: {sorted(data.get('machines', {}))}): "
        "record them with KOKORO_GOLDEN_UPDATE=1 make e2e from the build before your change"
    )
    want = ours.get(path, {}).get(key)
    assert want is not None, f"no golden digest for {path} {key}: record with KOKORO_GOLDEN_UPDATE=1"
    if path != "backend" and key in ours.get("backend", {}):
        # The two paths run one pipeline: the same request makes the same bytes.
        assert got == ours["backend"][key], f"{path} {key} differs from the backend's audio"
    assert got == want, (
        f"{path} {key}: audio changed on {machine()}; "
        "if the change is intended, re-record with KOKORO_GOLDEN_UPDATE=1 and say why"
    )


@pytest.mark.parametrize("fmt,stream", CASES)
def test_backend_audio_is_unchanged(url, fmt, stream):
    check("backend", url, fmt, stream)


@pytest.mark.parametrize("fmt,stream", [(f, s) for f in PURE for s in (True, False)])
def test_wasi_nn_audio_is_unchanged(fmt, stream):
    nn = os.environ.get("KOKORO_NN_URL")
    if not nn:
        pytest.skip("KOKORO_NN_URL not set")
    check("wasi-nn", nn, fmt, stream)
