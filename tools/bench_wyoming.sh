#!/usr/bin/env bash
# Time to first audio over Wyoming, measured by wyoming-bench (PyPI, the tool the
# Home Assistant community compares Wyoming TTS servers with) against our own
# backend on the real model: non-streaming (`synthesize`) and streaming
# (`synthesize-start` / `-chunk` / `-stop`, one chunk per sentence), its four
# default texts of 1-4 sentences, ROUNDS rounds each after a warm-up.
# Writes its report to target/bench/wyoming.txt. Run by `make bench-wyoming`.
set -euo pipefail
cd "$(dirname "$0")/.."
HTTP=${BENCH_HTTP:-127.0.0.1:18895}
WY=${BENCH_WYOMING:-127.0.0.1:10299}
ROUNDS=${ROUNDS:-5}
mkdir -p target/bench
target/debug/kokoro-backend serve --listen "$HTTP" --wyoming "$WY" > target/bench/wyoming-backend.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do curl -sf "http://$HTTP/health" >/dev/null && break; sleep 0.5; done
curl -sf "http://$HTTP/health" >/dev/null || { cat target/bench/wyoming-backend.log; exit 1; }
{
  echo "# wyoming-bench against kokoro-backend $(git rev-parse --short HEAD), $(date -u +%F)"
  echo "# machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
  .venv/bin/wyoming-bench tts "$WY" --mode both --rounds "$ROUNDS" --warmup 1 -v \
    --config '{"voice": {"name": "af_heart"}}'
} 2>&1 | tee target/bench/wyoming.txt
