"""wasi-nn edge vs native backend, side by side in one run: time to first audio
(streamed wav, first body byte) and real-time factor (non-streamed paragraph).

usage: bench_nn.py BACKEND_URL NN_EDGE_URL [N]
Requests alternate between the two servers so machine noise hits both alike; only
one server works at a time (they share the cores).
"""
import json
import statistics
import sys
import time

import httpx

backend, nn = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 10
SENTENCE = "The quick brown fox jumps over the lazy dog."
PARAGRAPH = (
    "Speech synthesis at the edge keeps the audio close to the listener. The component "
    "validates the request, normalizes the text, and runs the model through wasi-nn. "
    "Every chunk is normalized to the same loudness as the native backend produces."
)


def ttfa(c, url):
    body = {"input": SENTENCE, "voice": "af_heart", "response_format": "wav"}
    t = time.perf_counter()
    with c.stream("POST", f"{url}/v1/audio/speech", json=body) as r:
        assert r.status_code == 200, r.read()
        first = None
        for chunk in r.iter_raw():
            if chunk and first is None:
                first = time.perf_counter() - t
    return first * 1e3


def rtf(c, url):
    body = {"input": PARAGRAPH, "voice": "af_heart", "response_format": "pcm", "stream": False}
    t = time.perf_counter()
    r = c.post(f"{url}/v1/audio/speech", json=body)
    wall = time.perf_counter() - t
    assert r.status_code == 200
    return wall / (len(r.content) / 2 / 24000)


with httpx.Client(timeout=120) as c:
    for url in (backend, nn):  # warm both
        ttfa(c, url)
    res = {k: {"ttfa_ms": [], "rtf": []} for k in ("backend", "wasi_nn")}
    for _ in range(n):
        for name, url in (("backend", backend), ("wasi_nn", nn)):
            res[name]["ttfa_ms"].append(ttfa(c, url))
            res[name]["rtf"].append(rtf(c, url))
    out = {"n": n}
    for name, v in res.items():
        out[name] = {k: round(statistics.median(x), 3) for k, x in v.items()}
    out["sandbox_cost"] = {
        "ttfa_ratio": round(out["wasi_nn"]["ttfa_ms"] / out["backend"]["ttfa_ms"], 3),
        "rtf_ratio": round(out["wasi_nn"]["rtf"] / out["backend"]["rtf"], 3),
    }
    print(json.dumps(out, indent=2))
