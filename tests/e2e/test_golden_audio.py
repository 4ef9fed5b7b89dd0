"""The same request gives byte-identical audio across refactors, on both synthesis
paths (the backend and the wasi-nn edge), for a fixed set of requests covering every
format, streamed and not.

The digests in golden_audio.json were recorded from the servers as they were before
the pipeline was unified (issue 12). A change that is meant to change the audio
(a new G2P rule, a new model, a new ONNX Runtime) re-records them on purpose:
`KOKORO_GOLDEN_UPDATE=1 make e2e`, and says why in its commit.

ONNX Runtime on CPU is deterministic for a fixed thread count and instruction set,
not across CPUs (an AMD EPYC and an Intel Xeon make different bits), so the digests
are kept per machine: CPU model, core count and the widest vector instructions ONNX
Runtime's kernels pick from (two CPUs that both call themselves "AMD EPYC", one with
AVX2 only and one with AVX-512 and VNNI, made different bits). Sets recorded before
the instruction level was part of the key are used only where no set with it exists.
A machine without its own set fails and says how to record one: record it from the
build before a change, so the set still says what the audio was.

Each set names the model version it was recorded with (the backend's /status: the
whole graph's and the served decoder's digests). A set recorded with another model
is stale, not a regression: the test says so and how to re-record, instead of
reporting every format as changed."""
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


def cpuinfo():
    """The first CPU's model name and flags."""
    out = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "flags"):
                    out.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return out


def cpu():
    return cpuinfo().get("model name") or platform.processor()


def isa(flags=None):
    """The widest instruction level among those ONNX Runtime's CPU kernels dispatch on."""
    have = set((cpuinfo().get("flags", "") if flags is None else flags).split())
    for name, need in (
        ("amx", {"amx_tile", "amx_int8"}),
        ("avx512-vnni", {"avx512f", "avx512bw", "avx512_vnni"}),
        ("avx512", {"avx512f", "avx512bw"}),
        ("avx-vnni", {"avx2", "avx_vnni"}),
        ("avx2", {"avx2", "fma"}),
    ):
        if need <= have:
            return name
    return "baseline"


def load():
    return json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}


def legacy_machine():
    return f"{cpu()} x{os.cpu_count()}"


def machine():
    return f"{legacy_machine()} {isa()}"


def machine_set(data):
    """This machine's digests: its own set, else one recorded under the older key."""
    sets = data.get("machines", {})
    return sets.get(machine(), sets.get(legacy_machine()))


def test_the_machine_key_tells_instruction_levels_apart():
    assert isa("fpu sse2 avx fma avx2") == "avx2"
    assert isa("avx2 fma avx512f avx512bw avx512_vnni avx_vnni") == "avx512-vnni"
    assert isa("avx2 fma avx512f avx512bw") == "avx512"
    assert isa("avx2 fma avx_vnni") == "avx-vnni"
    assert isa("sse2 sse4_2") == "baseline"
    assert isa("avx2 fma amx_tile amx_int8 avx512f avx512bw avx512_vnni") == "amx"
    assert machine().startswith(legacy_machine() + " ")
    legacy = {"machines": {legacy_machine(): {"backend": {}}}}
    assert machine_set(legacy) == {"backend": {}}
    both = {"machines": {legacy_machine(): {"old": 1}, machine(): {"new": 1}}}
    assert machine_set(both) == {"new": 1}


def served_model():
    """The model version the backend serves (both paths run the same graphs)."""
    base = os.environ.get("KOKORO_URL", "http://127.0.0.1:8880")
    r = httpx.get(base + "/status", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["model"]["version"]


def record(path, key, value):
    data = load()
    data.setdefault("text", TEXT)
    ours = data.setdefault("machines", {}).setdefault(machine(), {})
    ours["model"] = served_model()
    ours.setdefault(path, {})[key] = value
    GOLDEN.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def check(path, base, fmt, stream):
    key = f"{fmt}-{'stream' if stream else 'whole'}"
    got = digest(base, fmt, stream)
    if os.environ.get("KOKORO_GOLDEN_UPDATE") == "1":
        record(path, key, got)
        return
    data = load()
    assert data.get("text") == TEXT, "the golden text changed: re-record"
    ours = machine_set(data)
    assert ours is not None, (
        f"no golden digests for this machine ({machine()}; recorded: {sorted(data.get('machines', {}))}): "
        "record them with KOKORO_GOLDEN_UPDATE=1 make e2e from the build before your change"
    )
    assert ours.get("model") == served_model(), (
        f"the golden digests for {machine()} were recorded with model {ours.get('model')}, "
        f"the servers run {served_model()}: re-record with KOKORO_GOLDEN_UPDATE=1 make e2e"
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
