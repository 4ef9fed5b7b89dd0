"""What carried state would buy streamed decoder windows (issue: streaming inside the sentence).

Decoding a window of frames differs from the whole decode for two reasons: every
AdaIN block normalizes over its own window's time axis (54 InstanceNorm chains:
ReduceMean, Sub, Mul, ReduceMean, Add, Sqrt, Div), and the harmonic source's phase
(SineGen's CumSum) restarts at the window. This tool rewrites the decoder half so
that both can be supplied from outside:

  - per norm i, inputs `norm{i}_mean`, `norm{i}_var` and a weight `norm{i}_w`: the
    statistics used are the pooled mix of the window's own (weight 1 - w) and the
    given ones (weight w); the window's own mean and variance are outputs. With
    w = 0 the graph is the original, sample for sample (checked).
  - `phase0`: added to the CumSum; the CumSum is an output, so the next window can
    start where the last one's phase was at its first frame.

Then, on the pipeline's own window schedule (synth/src/windows.rs: the whole
leading pad plus 16 speech frames first, 8 of context, the second window as long,
then doubling, cross-fades of 2 frames each side), it reports the log-mel RMS
distance of the joined windows from the whole decode, per sentence and median, for:

  local          each window's own statistics (what ships)
  carry          + the phase carried from the previous window
  running        running statistics: window k mixes its own with the pool of
                 windows 1..k-1, weighted by frames, + phase carry
  prior          statistics of the other sentences (a per-voice prior), w = 0.75
  decimated2     statistics of a pass over every 2nd frame (costs half a whole
                 decode before the first window)
  oracle         the whole decode's statistics (the bound; needs the whole decode)
  oracle+carry   both
  head+carry     the whole decode's statistics for the 10 frame-rate norms only
                 (encode/decode blocks, cheap to run whole), the generator's 44
                 norms their windows' own, + phase carry
  gen+carry      the other way round: the generator's norms exact, the 10
                 frame-rate norms their windows' own, + phase carry

and the cost of the rewritten graph at w = 0 against the original (whole decode,
interleaved, medians).

usage: bench_norm_state.py ENCODER DECODER VOICE_BIN SENTENCES_JSON [--out FILE]
(ENCODER: the half `cargo xtask assets` derives; DECODER: the unrewritten cut,
`split_graph.py MODEL ENC DEC` on the whole graph, since the served half has its norm
chains fused already; SENTENCES_JSON as for bench_split.py; needs
PYTHONPATH=<assets>/.pytools for onnx)
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
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_stream import distance  # noqa: E402  (the same log-mel distance)
from bench_split import FEATS, HOP, median  # noqa: E402

FIRST, CONTEXT, LEAD = 16, 8, 32  # synth/src/windows.rs DEFAULT_WINDOWS
FADE = CONTEXT // 4


def stateful(src, dst):
    """The decoder with its norms' statistics and the sine phase as inputs and outputs."""
    m = onnx.load(src)
    g = m.graph
    cons = {}
    for n in g.node:
        for i in n.input:
            cons.setdefault(i, []).append(n)
    first = [n for n in g.node if n.op_type == "ReduceMean" and n.name.endswith("/ReduceMean")]
    if not first:
        raise SystemExit("no norm chains in this decoder: give the unrewritten cut (see usage)")
    g.initializer.append(numpy_helper.from_array(np.array([1.0], np.float32), "st/one"))
    new = []
    for i, rm in enumerate(first):
        x, ml = rm.input[0], rm.output[0]
        dl = next(n for n in cons[ml] if n.op_type == "Sub").output[0]
        sq = next(n for n in cons[dl] if n.op_type == "Mul" and n.input[0] == n.input[1] == dl)
        vl = cons[sq.output[0]][0].output[0]
        eps = cons[vl][0]
        div = next(n for n in cons[dl] if n.op_type == "Div")
        mp, vp, s = f"norm{i}_mean", f"norm{i}_var", f"st/{i}/"
        wn, omw = f"norm{i}_w", f"st/{i}/1mw"
        g.input.append(helper.make_tensor_value_info(wn, TensorProto.FLOAT, [1]))
        new.append(helper.make_node("Sub", ["st/one", wn], [omw]))
        for name in (mp, vp):
            g.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, f"c{i}", 1]))
        for name in (ml, vl):
            g.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, f"c{i}", 1]))
        new += [
            helper.make_node("Sub", [mp, ml], [s + "dm"]),
            helper.make_node("Mul", [wn, s + "dm"], [s + "wdm"]),
            helper.make_node("Add", [ml, s + "wdm"], [s + "mu"]),  # pooled mean
            helper.make_node("Sub", [ml, s + "mu"], [s + "a"]),
            helper.make_node("Mul", [s + "a", s + "a"], [s + "a2"]),
            helper.make_node("Add", [vl, s + "a2"], [s + "va"]),
            helper.make_node("Mul", [omw, s + "va"], [s + "vaw"]),
            helper.make_node("Sub", [mp, s + "mu"], [s + "b"]),
            helper.make_node("Mul", [s + "b", s + "b"], [s + "b2"]),
            helper.make_node("Add", [vp, s + "b2"], [s + "vb"]),
            helper.make_node("Mul", [wn, s + "vb"], [s + "vbw"]),
            helper.make_node("Add", [s + "vaw", s + "vbw"], [s + "vu"]),  # pooled variance
            helper.make_node("Sub", [x, s + "mu"], [s + "du"]),
        ]
        eps.input[list(eps.input).index(vl)] = s + "vu"
        div.input[0] = s + "du"
    cs = next(n for n in g.node if n.op_type == "CumSum")
    out = cs.output[0]
    for n in cons[out]:
        n.input[list(n.input).index(out)] = "st/phase"
    g.input.append(helper.make_tensor_value_info("phase0", TensorProto.FLOAT, [1, 1, "h"]))
    new.append(helper.make_node("Add", [out, "phase0"], ["st/phase"]))
    g.output.append(helper.make_tensor_value_info("st/phase", TensorProto.FLOAT, [1, "t", "h"]))
    # Topological order with the new nodes.
    avail = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    pending, order = list(g.node) + new, []
    while pending:
        rest = [n for n in pending if not all(i in avail for i in n.input)]
        for n in pending:
            if n not in rest:
                order.append(n)
                avail.update(n.output)
        if len(rest) == len(pending):
            raise SystemExit("the rewritten decoder has a cycle")
        pending = rest
    del g.node[:]
    g.node.extend(order)
    onnx.save(m, dst)
    return [n.name for n in first]


def schedule(frames, lead_pad):
    """synth/src/windows.rs schedule() with growth 2: (emit_lo, emit_hi, dec_lo, dec_hi)."""
    start = max(lead_pad - LEAD, 0)
    begin, size, out = start, min(lead_pad, frames) - start + FIRST, []
    while begin < frames:
        end = min(begin + size, frames)
        nxt = max(end - start, FIRST)
        if frames - end < nxt // 2:
            end = frames
        out.append((begin, end, max(begin - CONTEXT, start), min(end + CONTEXT, frames)))
        begin, size = end, nxt
    return out


def pool(a, na, b, nb):
    n = na + nb
    out = []
    for (ma, va), (mb, vb) in zip(a, b):
        m = (na * ma + nb * mb) / n
        out.append((m, (na * (va + (ma - m) ** 2) + nb * (vb + (mb - m) ** 2)) / n))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("encoder")
    ap.add_argument("decoder")
    ap.add_argument("voice")
    ap.add_argument("sentences")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default="target/bench-norm-state.json")
    a = ap.parse_args()
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    cpu = ["CPUExecutionProvider"]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "decoder-state.onnx")
        names = stateful(a.decoder, path)
        norms = len(names)
        in_gen = ["generator" in n for n in names]
        print(f"{norms} norms, {sum(in_gen)} in the generator", file=sys.stderr)
        dec = ort.InferenceSession(path, so, providers=cpu)
    enc = ort.InferenceSession(a.encoder, so, providers=cpu)
    plain = ort.InferenceSession(a.decoder, so, providers=cpu)
    outs = [o.name for o in dec.get_outputs()]
    pack = np.fromfile(a.voice, dtype="<f4").reshape(510, 256)
    sents = json.load(open(a.sentences))
    neutral = [(np.zeros((1, 1, 1), np.float32), np.ones((1, 1, 1), np.float32))] * norms
    zero_phase = np.zeros((1, 1, 9), np.float32)

    prepared = []
    for s in sents:
        t = s["tokens"]
        feed = {"tokens": np.array([[0] + t + [0]], np.int64), "style": pack[len(t) - 1:len(t)],
                "speed": np.array([1.0], np.float32)}
        asr, f0, nrg, dur = enc.run(None, feed)
        prepared.append((s["text"], feed["style"], asr, f0, nrg, int(dur[0][0])))

    def run(style, asr, f0, nrg, w, stats, phase):
        f = {FEATS[0]: asr, FEATS[1]: f0, FEATS[2]: nrg, "style": style, "phase0": phase}
        ws = w if isinstance(w, list) else [w] * norms
        for i, (m, v) in enumerate(stats):
            f[f"norm{i}_mean"], f[f"norm{i}_var"] = m, v
            f[f"norm{i}_w"] = np.array([ws[i]], np.float32)
        r = dict(zip(outs, dec.run(None, f)))
        own = [(r[outs[1 + 2 * i]], r[outs[2 + 2 * i]]) for i in range(norms)]
        return r["audio"], own, r["st/phase"]

    # The whole decode's statistics per sentence (the oracle, and the priors).
    whole = []
    for _, style, asr, f0, nrg, _ in prepared:
        whole.append(run(style, asr, f0, nrg, 0.0, neutral, zero_phase))

    rows, cost = [], {"plain": [], "rewritten": []}
    for si, (text, style, asr, f0, nrg, lead) in enumerate(prepared):
        frames = asr.shape[-1]
        ref = plain.run(None, {FEATS[0]: asr, FEATS[1]: f0, FEATS[2]: nrg, "style": style})[0]
        exact = float(np.abs(whole[si][0] - ref).max())
        oracle, oracle_phase = whole[si][1], whole[si][2]
        others = [whole[j][1] for j in range(len(whole)) if j != si]
        prior, n = others[0], 1
        for o in others[1:]:
            prior, n = pool(prior, n, o, 1), n + 1
        half = lambda x: np.ascontiguousarray(x.reshape(1, -1, 2)[:, ::2, :].reshape(1, -1))  # noqa: E731
        decimated = run(style, np.ascontiguousarray(asr[..., ::2]), half(f0), half(nrg), 0.0, neutral, zero_phase)[1]
        wins = schedule(frames, lead)

        def stream(stats_mode, carry):
            pooled, pooled_n, last_phase, last_lo, pieces = None, 0, None, 0, []
            for b, e, lo, hi in wins:
                stats, w = neutral, 0.0
                if stats_mode == "oracle":
                    stats, w = oracle, 1.0
                elif stats_mode == "head":
                    stats, w = oracle, [0.0 if g else 1.0 for g in in_gen]
                elif stats_mode == "gen":
                    stats, w = oracle, [1.0 if g else 0.0 for g in in_gen]
                elif stats_mode == "prior":
                    stats, w = prior, 0.75
                elif stats_mode == "decimated2":
                    stats, w = decimated, 1.0
                elif stats_mode == "running" and pooled is not None:
                    stats, w = pooled, pooled_n / (pooled_n + hi - lo)
                phase = zero_phase
                if carry and lo > 0:
                    phase = (oracle_phase[:, 2 * lo - 1:2 * lo, :] if last_phase is None
                             else last_phase[:, 2 * (lo - last_lo) - 1:2 * (lo - last_lo), :])
                audio, own, last_phase = run(style, asr[..., lo:hi], f0[..., 2 * lo:2 * hi], nrg[..., 2 * lo:2 * hi],
                                             w, stats, np.ascontiguousarray(phase))
                last_lo = lo
                pooled, pooled_n = (own, hi - lo) if pooled is None else (pool(pooled, pooled_n, own, hi - lo),
                                                                          pooled_n + hi - lo)
                pieces.append((b, e, lo, audio))
            out, fade = np.zeros(frames * HOP, np.float32), FADE * HOP
            for k, (b, e, lo, audio) in enumerate(pieces):
                s0 = b * HOP - (fade if k else 0)
                s1 = e * HOP + (fade if k + 1 < len(pieces) else 0)
                seg = audio[s0 - lo * HOP:s1 - lo * HOP].copy()
                if k:
                    seg[:2 * fade] *= np.linspace(0, 1, 2 * fade, dtype=np.float32)
                if k + 1 < len(pieces):
                    seg[-2 * fade:] *= np.linspace(1, 0, 2 * fade, dtype=np.float32)
                out[s0:s1] += seg
            return out

        r = {"text": text, "frames": frames, "windows": len(wins), "exact_max_diff": exact}
        for name, mode, carry in (("local", "local", False), ("carry", "local", True), ("running", "running", True),
                                  ("prior", "prior", True), ("decimated2", "decimated2", True),
                                  ("oracle", "oracle", False), ("oracle+carry", "oracle", True),
                                  ("head+carry", "head", True), ("gen+carry", "gen", True)):
            r[name] = round(distance(stream(mode, carry), ref), 2)
        for _ in range(a.reps):
            t0 = time.perf_counter()
            plain.run(None, {FEATS[0]: asr, FEATS[1]: f0, FEATS[2]: nrg, "style": style})
            cost["plain"].append((time.perf_counter() - t0) / frames)
            t0 = time.perf_counter()
            run(style, asr, f0, nrg, 0.0, neutral, zero_phase)
            cost["rewritten"].append((time.perf_counter() - t0) / frames)
        rows.append(r)
        print(json.dumps(r), flush=True)
    keys = [k for k in rows[0] if k not in ("text", "frames", "windows")]
    summary = {"onnxruntime": ort.__version__, "threads": a.threads, "norms": norms,
               "median_db": {k: median([r[k] for r in rows]) for k in keys},
               "ms_per_frame": {k: round(median(v) * 1e3, 2) for k, v in cost.items()},
               "sentences": rows}
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    json.dump(summary, open(a.out, "w"), indent=1)
    print({k: v for k, v in summary.items() if k != "sentences"})


if __name__ == "__main__":
    main()
