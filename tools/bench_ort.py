"""Python onnxruntime on the same graph and tokens as the Rust bench.

usage: bench_ort.py MODEL VOICE_BIN THREADS REPS TOKEN[,TOKEN...]
prints JSON: {"version", "times_s": [...], "samples"}
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort

model, voice, threads, reps, tokens = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ids = [int(t) for t in tokens.split(",")]
style = np.fromfile(voice, dtype="<f4").reshape(510, 256)[len(ids) - 1 : len(ids)]
so = ort.SessionOptions()
so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
feed = {"tokens": np.array([[0] + ids + [0]], dtype=np.int64), "style": style, "speed": np.array([1.0], dtype=np.float32)}
s.run(None, feed)  # warm-up
times = []
for _ in range(reps):
    t = time.perf_counter()
    out = s.run(None, feed)[0]
    times.append(time.perf_counter() - t)
print(json.dumps({"version": ort.__version__, "times_s": times, "samples": int(out.shape[-1])}))
