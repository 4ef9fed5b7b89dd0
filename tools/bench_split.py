"""Measurements for streaming inside the sentence (issue: encoder/decoder split).

Cuts the served graph at /encoder -> /decoder (onnx.utils.Extractor), then, on a
fixed set of sentences, with ONNX Runtime on CPU:
  - exactness: the decoder on the encoder's outputs against the whole graph;
  - timing (interleaved rounds, medians): whole graph, encoder, decoder windows;
  - window fidelity: first window W frames (+C right context), the rest decoded
    from W-L, cross-faded over X frames, as log-mel RMS distance from the whole
    decode; and the floor: decoding one frame less at either end;
  - boundary padding: dropping L leading pad frames before the decoder (same
    durations), and capping the pad tokens' predicted durations in the graph.

usage: bench_split.py MODEL VOICE_BIN SENTENCES_JSON [--threads 2] [--reps 5] [--out FILE]
SENTENCES_JSON: [{"text", "tokens": [...]}] (tokens from a backend's /dev/phonemize).
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper
from onnx.utils import Extractor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_stream import distance  # noqa: E402  (the same log-mel distance)

FEATS = ["/encoder/MatMul_1_output_0", "/encoder/Reshape_output_0", "/encoder/Reshape_1_output_0"]
DURATIONS = "/encoder/Clip_output_0"
HOP = 600  # samples per frame (25 ms at 24 kHz)


def split(model, tmp):
    m = onnx.load(model)
    ex = Extractor(m)
    enc = ex.extract_model(["tokens", "style", "speed"], FEATS + [DURATIONS])
    dec = ex.extract_model(FEATS + ["style"], ["audio"])
    paths = os.path.join(tmp, "enc.onnx"), os.path.join(tmp, "dec.onnx")
    onnx.save(enc, paths[0])
    onnx.save(dec, paths[1])
    # The pad tokens' durations capped at 4 frames inside the graph.
    g = m.graph
    p = "/bench/edges"
    for n, v in (("one", 1), ("zero", 0), ("minus", -1), ("end", 2**62), ("axis", 1)):
        g.initializer.append(numpy_helper.from_array(np.array([v], np.int64), f"{p}/{n}"))
    g.initializer.append(numpy_helper.from_array(np.array(4.0, np.float32), f"{p}/cap"))
    new = [
        helper.make_node("Slice", [DURATIONS, f"{p}/zero", f"{p}/one", f"{p}/axis"], [f"{p}/a"]),
        helper.make_node("Slice", [DURATIONS, f"{p}/one", f"{p}/minus", f"{p}/axis"], [f"{p}/b"]),
        helper.make_node("Slice", [DURATIONS, f"{p}/minus", f"{p}/end", f"{p}/axis"], [f"{p}/c"]),
        helper.make_node("Min", [f"{p}/a", f"{p}/cap"], [f"{p}/a2"]),
        helper.make_node("Min", [f"{p}/c", f"{p}/cap"], [f"{p}/c2"]),
        helper.make_node("Concat", [f"{p}/a2", f"{p}/b", f"{p}/c2"], [f"{p}/d"], axis=1),
    ]
    for n in g.node:
        for i, name in enumerate(n.input):
            if name == DURATIONS:
                n.input[i] = f"{p}/d"
    at = next(i for i, n in enumerate(g.node) if DURATIONS in n.output) + 1
    for j, n in enumerate(new):
        g.node.insert(at + j, n)
    capped = os.path.join(tmp, "capped.onnx")
    onnx.save(m, capped)
    return paths + (capped,)


def speech_span(x, thr=0.01):
    nz = np.nonzero(np.abs(x) > thr)[0]
    return (nz[-1] - nz[0] + 1) if len(nz) else 0


def median(v):
    return float(sorted(v)[len(v) // 2])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("voice")
    ap.add_argument("sentences")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default="target/bench-split.json")
    a = ap.parse_args()
    sents = json.load(open(a.sentences))
    pack = np.fromfile(a.voice, dtype="<f4").reshape(510, 256)
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    with tempfile.TemporaryDirectory() as tmp:
        enc_p, dec_p, cap_p = split(a.model, tmp)
        whole, enc, dec, capped = (ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])
                                   for p in (a.model, enc_p, dec_p, cap_p))
    rows = []
    for s in sents:
        t = s["tokens"]
        feed = {"tokens": np.array([[0] + t + [0]], np.int64), "style": pack[len(t) - 1:len(t)],
                "speed": np.array([1.0], np.float32)}
        asr, f0, nrg, dur = enc.run(None, feed)
        frames = asr.shape[-1]

        def decode(lo, hi):
            return dec.run(None, {FEATS[0]: asr[..., lo:hi], FEATS[1]: f0[..., 2 * lo:2 * hi],
                                  FEATS[2]: nrg[..., 2 * lo:2 * hi], "style": feed["style"]})[0]

        ref = whole.run(None, feed)[0]
        r = {"text": s["text"], "frames": int(frames), "pad_frames": [int(dur[0][0]), int(dur[0][-1])],
             "exact_max_diff": float(np.abs(decode(0, frames) - ref).max())}
        # Timing, interleaved rounds.
        sizes = [w for w in (16, 24, 32, 48) if w < frames]
        times = {k: [] for k in ["whole", "encoder", "decoder_all"] + [f"decoder_{w}" for w in sizes]}
        for _ in range(a.reps):
            for k in times:
                t0 = time.perf_counter()
                if k == "whole":
                    whole.run(None, feed)
                elif k == "encoder":
                    enc.run(None, feed)
                elif k == "decoder_all":
                    decode(0, frames)
                else:
                    decode(0, int(k.split("_")[1]))
                times[k].append(time.perf_counter() - t0)
        r["ms"] = {k: round(median(v) * 1e3, 1) for k, v in times.items()}
        # The floor: one frame less at either end.
        r["floor_db"] = {"left_1": distance(np.concatenate([ref[:HOP], decode(1, frames)]), ref),
                         "right_1": distance(decode(0, frames - 1), ref[:(frames - 1) * HOP])}
        # Windows: first W (+C context), rest from W-L, cross-fade X frames.
        win = {}
        for w, c, lctx, x in ((24, 8, 8, 4), (24, 16, 16, 4), (32, 16, 16, 4), (48, 16, 16, 4)):
            if w + c >= frames:
                continue
            first, rest = decode(0, w + c), decode(w - lctx, frames)
            off = lctx * HOP
            out = np.concatenate([first[:w * HOP], rest[off:]])
            h = x * HOP // 2
            ramp = np.linspace(0, 1, 2 * h)
            out[w * HOP - h:w * HOP + h] = first[w * HOP - h:w * HOP + h] * (1 - ramp) + rest[off - h:off + h] * ramp
            win[f"{w}+{c}|{lctx}x{x}"] = {"total_db": distance(out, ref),
                                          "first_db": distance(out[:w * HOP], ref[:w * HOP])}
        r["windows"] = win
        # Leading pad frames dropped before the decoder (durations unchanged).
        lead = {}
        for drop in (4, 8):
            if drop < dur[0][0]:
                d = decode(drop, frames)
                lead[str(drop)] = {"db": distance(d, ref[drop * HOP:]),
                                   "speech_ratio": speech_span(d) / max(speech_span(ref), 1)}
        r["lead_drop"] = lead
        cap = capped.run(None, feed)[0]
        r["duration_cap4_speech_ratio"] = speech_span(cap) / max(speech_span(ref), 1)
        rows.append(r)
        print(json.dumps({k: r[k] for k in ("text", "frames", "pad_frames", "exact_max_diff", "ms")}))
        print("   floor", {k: round(v, 2) for k, v in r["floor_db"].items()},
              "windows", {k: round(v["total_db"], 2) for k, v in win.items()},
              "lead_drop", {k: (round(v["db"], 2), round(v["speech_ratio"], 3)) for k, v in lead.items()},
              "cap4 speech", round(r["duration_cap4_speech_ratio"], 3))
    summary = {"onnxruntime": ort.__version__, "threads": a.threads, "reps": a.reps, "sentences": rows}
    for key in ("left_1", "right_1"):
        summary[f"floor_{key}_median_db"] = median([r["floor_db"][key] for r in rows])
    per_frame = [(r["ms"]["decoder_all"] / r["frames"]) for r in rows]
    summary["decoder_ms_per_frame_median"] = median(per_frame)
    summary["encoder_share_median"] = median([r["ms"]["encoder"] / r["ms"]["whole"] for r in rows])
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    json.dump(summary, open(a.out, "w"), indent=1)
    print({k: v for k, v in summary.items() if k != "sentences"})


if __name__ == "__main__":
    main()
