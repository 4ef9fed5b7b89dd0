"""Edge benchmark: cache-hit latency and proxy overhead, side by side in one run.

usage: bench_edge.py BACKEND_URL EDGE_URL [N]
Interleaves direct and proxied requests so machine noise hits both alike.
"""
import json
import statistics
import sys
import time

import httpx

backend, edge = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 200


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


with httpx.Client(timeout=60) as c:
    body = {"input": "Benchmarking the edge cache.", "stream": False}
    assert c.post(f"{edge}/v1/audio/speech", json=body).status_code == 200  # fill the cache
    hits, direct, proxied = [], [], []
    for _ in range(n):
        t = time.perf_counter()
        r = c.post(f"{edge}/v1/audio/speech", json=body)
        hits.append((time.perf_counter() - t) * 1e3)
        assert r.headers["x-cache"] == "hit"
        t = time.perf_counter()
        c.get(f"{backend}/v1/models")
        direct.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        c.get(f"{edge}/v1/models")
        proxied.append((time.perf_counter() - t) * 1e3)
    out = {
        "n": n,
        "cache_hit_ms": {"p50": statistics.median(hits), "p95": pct(hits, 95)},
        "direct_ms": {"p50": statistics.median(direct), "p95": pct(direct, 95)},
        "via_edge_ms": {"p50": statistics.median(proxied), "p95": pct(proxied, 95)},
        "proxy_overhead_p50_ms": statistics.median(proxied) - statistics.median(direct),
    }
    print(json.dumps(out, indent=1))
