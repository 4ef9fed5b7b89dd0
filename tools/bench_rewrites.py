"""Each rewrite of tools/optimize_decoder.py against the unrewritten decoder half.

For a first window (37 frames: a 13-frame lead pad, 16 speech frames, 8 of context)
and a whole sentence (130 frames), on the same encoder outputs: the rewritten
decoder's output against the unrewritten one's (max |difference|, SNR, log-mel RMS
distance as bench_stream measures it), and the
decode time, interleaved rounds, medians, with the ratio to the unrewritten graph.

usage: bench_rewrites.py ASSETS_DIR [--reps 10] [--threads 2]
(ASSETS_DIR: what `cargo xtask assets` fills, with its .pytools for the onnx package.)
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

FEATS = ["/encoder/MatMul_1_output_0", "/encoder/Reshape_output_0", "/encoder/Reshape_1_output_0"]
# "The quick brown fox jumps over the lazy dog." as misaki spells it.
PHONEMES = "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˈOvəɹ ðə lˈAzi dˈɔɡ."


def session(path, threads):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("assets")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(a.assets, ".pytools"))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import onnx  # noqa: E402
    import optimize_decoder as opt  # noqa: E402

    vocab = json.load(open(os.path.join(a.assets, "vocab.json")))["vocab"]
    ids = [0] + [vocab[c] for c in PHONEMES if c in vocab] + [0]
    pack = np.fromfile(os.path.join(a.assets, "voices", "af_heart.bin"), dtype="<f4").reshape(510, 256)
    style = pack[len(ids) - 2][None, :]
    stem = os.path.join(a.assets, "kokoro-v1.0.int8-fconv")
    enc = session(stem + ".encoder.onnx", a.threads)
    out = enc.run(None, {"tokens": np.array([ids], np.int64), "style": style, "speed": np.array([1.0], np.float32)})
    f = dict(zip([o.name for o in enc.get_outputs()], out))

    from bench_stream import distance  # noqa: E402
    from onnx.utils import Extractor  # noqa: E402

    with tempfile.TemporaryDirectory() as tmp:
        # The served decoder half is rewritten; cut the unrewritten one from the whole graph.
        cut = os.path.join(tmp, "unrewritten.onnx")
        onnx.save(Extractor(onnx.load(stem + ".onnx")).extract_model(FEATS + ["style"], ["audio"]), cut)
        variants = {"unrewritten": cut}
        for only in ("pow", "norm", "conv2d", "stft", "pow,norm,conv2d", "pow,norm,stft,conv2d"):
            m = onnx.load(cut)
            opt.apply(m, only.split(","))
            p = os.path.join(tmp, only.replace(",", "+") + ".onnx")
            onnx.save(m, p)
            variants[only] = p
        decs = {k: session(p, a.threads) for k, p in variants.items()}
        report = {}
        for frames in (37, 130):
            inp = {
                FEATS[0]: f[FEATS[0]][:, :, :frames],
                FEATS[1]: f[FEATS[1]][:, : 2 * frames],
                FEATS[2]: f[FEATS[2]][:, : 2 * frames],
                "style": style,
            }
            ref = decs["unrewritten"].run(None, inp)[0]
            times = {k: [] for k in decs}
            for r in range(a.reps):
                for k, d in decs.items():
                    t = time.perf_counter()
                    y = d.run(None, inp)[0]
                    times[k].append((time.perf_counter() - t) * 1000)
                    if r == 0:
                        err = y - ref
                        snr = 10 * np.log10(np.sum(ref**2) / max(np.sum(err**2), 1e-30))
                        report[f"{frames}/{k}"] = {"max_abs_diff": float(np.abs(err).max()), "snr_db": float(snr),
                                                   "logmel_db": distance(y, ref)}
            base = np.median(times["unrewritten"])
            for k, v in times.items():
                med = float(np.median(v))
                report[f"{frames}/{k}"].update(ms_median=med, speedup=float(base / med))
                print(f"{frames:4d} frames {k:16s} {med:8.1f} ms  x{base / med:.3f}  "
                      f"max|d| {report[f'{frames}/{k}']['max_abs_diff']:.1e}  "
                      f"SNR {report[f'{frames}/{k}']['snr_db']:.0f} dB  "
                      f"log-mel {report[f'{frames}/{k}']['logmel_db']:.2f} dB")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
