"""What trimming the boundary pads before the decoder costs and buys (issue: streaming
inside the sentence, item 3), for whole (non-streamed) decodes.

The model gives the padding token at each end of a call 9-18 frames of silence; the
pipeline decodes them and then cuts the audio down to 60 ms before the speech and a
punctuation pause after it. Decoding fewer of them is cheaper, but every AdaIN block
normalizes over the decoded frames, so the speech itself moves a little. On a fixed
set of sentences this decodes each call whole and with only K frames of each pad
kept (K in --keep), and reports, side by side:

  - decode time (interleaved rounds, medians) and the ratio to the whole decode;
  - log-mel RMS distance of the kept frames from the same frames of the whole
    decode, beside the floor (one frame less at the end: what any change costs);
  - PocketSphinx word error rate of each (mean over sentences) and the speech span;
  - pauses of >= 80 ms inside the speech that the whole decode lacks.

usage: bench_trim.py ENCODER DECODER VOICE_BIN SENTENCES_JSON [--keep 4,6,8] [--reps 3]
SENTENCES_JSON: [{"text", "tokens": [...]}] (tokens from a backend's /dev/phonemize).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_split import FEATS, HOP, median, speech_span  # noqa: E402
from bench_stream import distance, pauses, transcribe, wer, words  # noqa: E402


def trimmed(x, lead=1440, tail=7200, thr=0.01):
    """The pipeline's edge-silence cut (synth::trim_silence) with a sentence's tail."""
    nz = np.nonzero(np.abs(x) > thr)[0]
    if not len(nz):
        return x
    return x[max(nz[0] - lead, 0):nz[-1] + 1 + tail]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("encoder")
    ap.add_argument("decoder")
    ap.add_argument("voice")
    ap.add_argument("sentences")
    ap.add_argument("--keep", default="4,6,8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default="target/bench-trim.json")
    a = ap.parse_args()
    keeps = [int(k) for k in a.keep.split(",")]
    sents = json.load(open(a.sentences))
    pack = np.fromfile(a.voice, dtype="<f4").reshape(510, 256)
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    enc, dec = (ort.InferenceSession(p, so, providers=["CPUExecutionProvider"]) for p in (a.encoder, a.decoder))
    rows = []
    for s in sents:
        t = s["tokens"]
        feed = {"tokens": np.array([[0] + t + [0]], np.int64), "style": pack[len(t) - 1:len(t)],
                "speed": np.array([1.0], np.float32)}
        asr, f0, nrg, dur = enc.run(None, feed)
        frames = asr.shape[-1]
        lead, trail = int(dur[0][0]), int(dur[0][-1])

        def decode(lo, hi):
            return dec.run(None, {FEATS[0]: asr[..., lo:hi], FEATS[1]: f0[..., 2 * lo:2 * hi],
                                  FEATS[2]: nrg[..., 2 * lo:2 * hi], "style": feed["style"]})[0].reshape(-1)

        ranges = {"whole": (0, frames)}
        for k in keeps:
            ranges[f"keep{k}"] = (max(lead - k, 0), frames - max(trail - k, 0))
        times = {name: [] for name in ranges}
        outs = {}
        for _ in range(a.reps):
            for name, (lo, hi) in ranges.items():
                t0 = time.perf_counter()
                outs[name] = decode(lo, hi)
                times[name].append(time.perf_counter() - t0)
        ref = outs["whole"]
        ref_words = words(s["text"])
        ref_pauses = len(pauses(trimmed(ref)))
        r = {"text": s["text"], "frames": int(frames), "pads": [lead, trail],
             "floor_db": distance(decode(0, frames - 1), ref[:(frames - 1) * HOP]), "cases": {}}
        for name, (lo, hi) in ranges.items():
            x = outs[name]
            heard = trimmed(x)
            r["cases"][name] = {
                "frames": hi - lo,
                "ms": median(times[name]) * 1e3,
                "db": 0.0 if name == "whole" else distance(x, ref[lo * HOP:hi * HOP]),
                "wer": wer(ref_words, words(transcribe(heard))),
                "speech_s": speech_span(x) / 24000,
                "extra_pauses": len(pauses(heard)) - ref_pauses,
            }
        rows.append(r)
        print(r["text"][:40], r["pads"], "floor", round(r["floor_db"], 2),
              {k: (v["frames"], round(v["ms"]), round(v["db"], 2), round(v["wer"], 2)) for k, v in r["cases"].items()})
    summary = {"onnxruntime": ort.__version__, "threads": a.threads, "reps": a.reps,
               "floor_db_median": median([r["floor_db"] for r in rows]), "cases": {}}
    for name in rows[0]["cases"]:
        c = [r["cases"][name] for r in rows]
        summary["cases"][name] = {
            "time_ratio_median": median([x["ms"] / r["cases"]["whole"]["ms"] for x, r in zip(c, rows)]),
            "frames_total": sum(x["frames"] for x in c),
            "db_median": median([x["db"] for x in c]),
            "wer_mean": float(np.mean([x["wer"] for x in c])),
            "speech_ratio_median": median([x["speech_s"] / max(r["cases"]["whole"]["speech_s"], 1e-9)
                                           for x, r in zip(c, rows)]),
            "extra_pauses": sum(max(x["extra_pauses"], 0) for x in c),
        }
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    json.dump({"summary": summary, "sentences": rows}, open(a.out, "w"), indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
