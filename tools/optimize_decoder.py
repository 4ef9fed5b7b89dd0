"""Algebra-preserving rewrites of the decoder half for ONNX Runtime's CPU kernels.

The exported decoder spells every instance norm (AdaIN) out as a chain
ReduceMean -> Sub -> Mul -> ReduceMean -> Add(eps) -> Sqrt -> Div over the time axis,
squares with Pow(x, 2), and convolves in 1-D. Each rewrite computes the same function:

  norm    the chain -> one InstanceNormalization (scale 1, bias 0, the chain's epsilon);
  pow     Pow(x, 2) -> Mul(x, x);
  stft    the harmonic source's STFT (onesided, real signal) and the Transpose/Gather
          that split it into real and imaginary parts -> one strided Conv whose fixed
          kernels are the windowed DFT basis (cos and -sin rows), then a Split;
  snake   Mul(alpha) -> Sin -> Mul(s, s) -> Mul(1 / alpha) -> Add(x) -> one
          ai.kokoro_edge:Snake node (custom: kokoro_ort::snake; plain ONNX Runtime
          cannot run the result, so it is a separate, CPU-only file);
  adasnake  after snake: InstanceNormalization -> Mul(scale) -> Add(shift) -> Snake
          (the style's AdaIN before the activation) -> one ai.kokoro_edge:AdaSnake;
  conv2d  a 1-D Conv -> Unsqueeze, a height-one 2-D Conv, Squeeze (ONNX Runtime's
          blocked NCHWc kernels only take 2-D convolutions).

`cargo xtask assets` applies kokoro_core::assets::DECODER_REWRITES (pow, norm, conv2d)
to the served decoder half. `stft` is left out: its DFT convolution matches the STFT
to rounding, but the decoder reads the phase of near-silent bins, which that rounding
flips between +pi and -pi, and the audio moves (4.9 dB log-mel). `tools/bench_rewrites.py`
measures each rewrite's speed and its output against the unrewritten decoder.

usage: optimize_decoder.py IN OUT [--only norm,pow,conv2d]
"""
import argparse
import collections
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

class Graph:
    def __init__(self, model):
        self.model = model
        self.g = model.graph
        self.inits = {i.name: i for i in self.g.initializer}
        self.refresh()

    def refresh(self):
        self.prod = {o: n for n in self.g.node for o in n.output}
        self.cons = collections.defaultdict(list)
        for n in self.g.node:
            for i in dict.fromkeys(n.input):
                self.cons[i].append(n)

    def const(self, name):
        """The value of an initializer or a Constant node's output, else None."""
        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        n = self.prod.get(name)
        if n is not None and n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
        return None

    def only_consumer(self, name, op):
        c = self.cons.get(name, [])
        return c[0] if len(c) == 1 and c[0].op_type == op else None

    def add_init(self, array, name):
        t = numpy_helper.from_array(array, name)
        self.g.initializer.append(t)
        self.inits[name] = t
        return name


def reduce_axes(gr, n):
    for a in n.attribute:
        if a.name == "axes":
            return list(a.ints)
    if len(n.input) > 1:
        v = gr.const(n.input[1])
        return None if v is None else [int(x) for x in np.ravel(v)]
    return None


def keepdims(n):
    return all(a.i == 1 for a in n.attribute if a.name == "keepdims")


def attr(n, name, default):
    for a in n.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "LeakyRelu", "Sin", "Cos", "Tanh", "Exp", "Pow", "Sqrt", "Relu", "Sigmoid"}


def channels(gr):
    """Static channel count (dim 1) of 3-D values: what shape inference knows, then
    carried forward from convolution weights through elementwise nodes."""
    inferred = shape_inference.infer_shapes(gr.model)
    out = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input):
        dims = vi.type.tensor_type.shape.dim
        if len(dims) == 3 and dims[1].HasField("dim_value"):
            out[vi.name] = dims[1].dim_value
    for n in gr.g.node:
        if n.output[0] in out:
            continue
        w = gr.const(n.input[1]) if len(n.input) > 1 else None
        if n.op_type == "Conv" and w is not None and w.ndim == 3:
            out[n.output[0]] = w.shape[0]
        elif n.op_type == "ConvTranspose" and w is not None and w.ndim == 3:
            out[n.output[0]] = w.shape[1] * attr(n, "group", 1)
        elif n.op_type in ELEMENTWISE:
            known = {out[i] for i in n.input if out.get(i, 1) > 1}
            if len(known) == 1:
                out[n.output[0]] = known.pop()
    return out


def rewrite_norms(gr):
    """ReduceMean(x) -> Sub -> Mul(s, s) -> ReduceMean -> Add(eps) -> Sqrt -> Div(s, .)."""
    chans = channels(gr)
    done = 0
    for mean in [n for n in gr.g.node if n.op_type == "ReduceMean"]:
        x = mean.input[0]
        if reduce_axes(gr, mean) not in ([2], [-1]) or not keepdims(mean) or x not in chans:
            continue
        sub = gr.only_consumer(mean.output[0], "Sub")
        if sub is None or list(sub.input) != [x, mean.output[0]]:
            continue
        s = sub.output[0]
        users = gr.cons[s]
        sq = [u for u in users if u.op_type == "Mul" and list(u.input) == [s, s]]
        div = [u for u in users if u.op_type == "Div" and u.input[0] == s]
        if len(users) != 2 or len(sq) != 1 or len(div) != 1:
            continue
        var = gr.only_consumer(sq[0].output[0], "ReduceMean")
        if var is None or reduce_axes(gr, var) not in ([2], [-1]) or not keepdims(var):
            continue
        add = gr.only_consumer(var.output[0], "Add")
        if add is None or add.input[0] != var.output[0]:
            continue
        eps = gr.const(add.input[1])
        if eps is None or eps.size != 1:
            continue
        sqrt = gr.only_consumer(add.output[0], "Sqrt")
        div = div[0]
        if sqrt is None or div.input[1] != sqrt.output[0]:
            continue
        c = chans[x]
        base = mean.name.rsplit("/", 1)[0] + "/InstanceNormalization"
        scale = gr.add_init(np.ones(c, np.float32), base + "/scale")
        bias = gr.add_init(np.zeros(c, np.float32), base + "/bias")
        node = helper.make_node(
            "InstanceNormalization",
            [x, scale, bias],
            [div.output[0]],
            name=base,
            epsilon=float(eps.ravel()[0]),
        )
        # x exists where the chain began; the chain's nodes all come after it.
        idx = list(gr.g.node).index(mean)
        for dead in (mean, sub, sq[0], var, add, sqrt, div):
            gr.g.node.remove(dead)
        gr.g.node.insert(idx, node)
        gr.refresh()
        done += 1
    return done


def rewrite_pows(gr):
    done = 0
    for n in list(gr.g.node):
        if n.op_type != "Pow":
            continue
        e = gr.const(n.input[1])
        if e is None or e.size != 1 or float(e.ravel()[0]) != 2.0:
            continue
        n.op_type = "Mul"
        n.input[1] = n.input[0]
        done += 1
    gr.refresh()
    return done


def rewrite_stft(gr):
    """STFT(x [B, L] or [B, L, 1], step, window, length) -> Transpose(perm [0, 2, 1, 3])
    -> Gather(axis 3, 0 | 1) (real | imaginary, [B, bins, frames]) becomes
    Reshape(x) [B, 1, L] -> Conv(stride step, 2 * bins kernels of `length` taps) -> Split."""
    done = 0
    for n in [m for m in gr.g.node if m.op_type == "STFT"]:
        if attr(n, "onesided", 1) != 1 or len(n.input) < 4:
            continue
        step = gr.const(n.input[1])
        window = gr.const(n.input[2]) if n.input[2] else None
        length = gr.const(n.input[3])
        if step is None or length is None or step.size != 1 or length.size != 1:
            continue
        hop, size = int(step.ravel()[0]), int(length.ravel()[0])
        if window is None:
            window = np.ones(size, np.float32)
        if window.shape != (size,):
            continue
        tr = gr.only_consumer(n.output[0], "Transpose")
        if tr is None or list(attr(tr, "perm", [])) != [0, 2, 1, 3]:
            continue
        parts = {}
        for g in gr.cons[tr.output[0]]:
            idx = gr.const(g.input[1]) if g.op_type == "Gather" else None
            if idx is None or idx.size != 1 or attr(g, "axis", 0) not in (3, -1) or idx.ndim != 0:
                parts = None
                break
            parts.setdefault(int(idx), []).append(g)
        if not parts or set(parts) - {0, 1}:
            continue
        bins = size // 2 + 1
        t = np.arange(size, dtype=np.float64)
        k = np.arange(bins, dtype=np.float64)[:, None]
        ang = 2 * np.pi * k * t[None, :] / size
        w = window.astype(np.float64)[None, :]
        kern = np.concatenate([w * np.cos(ang), -w * np.sin(ang)])[:, None, :].astype(np.float32)
        base = n.name + "/conv"
        x3 = base + "/x"
        y = base + "/y"
        real, imag = base + "/real", base + "/imag"
        nodes = [
            # [B, L] or [B, L, 1] -> [B, 1, L]
            helper.make_node(
                "Reshape", [n.input[0], gr.add_init(np.array([0, 1, -1], np.int64), base + "/shape")],
                [x3], name=base + "/reshape",
            ),
            helper.make_node(
                "Conv",
                [x3, gr.add_init(kern, base + "/dft")],
                [y],
                name=base,
                kernel_shape=[size],
                strides=[hop],
            ),
            helper.make_node(
                "Split", [y, gr.add_init(np.array([bins, bins], np.int64), base + "/halves")],
                [real, imag], name=base + "/split", axis=1,
            ),
        ]
        out = {0: real, 1: imag}
        idx = list(gr.g.node).index(n)
        for i, gs in parts.items():
            for g in gs:
                for c in gr.cons[g.output[0]]:
                    for j, name in enumerate(c.input):
                        if name == g.output[0]:
                            c.input[j] = out[i]
                gr.g.node.remove(g)
        gr.g.node.remove(tr)
        gr.g.node.remove(n)
        for j, m in enumerate(nodes):
            gr.g.node.insert(idx + j, m)
        gr.refresh()
        done += 1
    return done


SNAKE_DOMAIN = "ai.kokoro_edge"  # kokoro_ort::snake::DOMAIN


def rewrite_snakes(gr):
    """Add(x, Mul(r, Mul(s, s))) with s = Sin(Mul(alpha, x)), alpha a [1, C, 1]
    constant, -> one ai.kokoro_edge:Snake(x, alpha, r) (kokoro_ort::snake computes it;
    plain ONNX Runtime cannot, so this graph runs only in our servers)."""
    def other(n, name):
        rest = [i for i in n.input if i != name]
        return rest[0] if len(n.input) == 2 and len(rest) == 1 else None

    done = 0
    for sin in [n for n in gr.g.node if n.op_type == "Sin"]:
        pre = gr.prod.get(sin.input[0])
        if pre is None or pre.op_type != "Mul" or len(gr.cons[pre.output[0]]) != 1:
            continue
        alpha = next((i for i in pre.input if gr.const(i) is not None and gr.const(i).ndim == 3), None)
        x = other(pre, alpha) if alpha else None
        if x is None or gr.const(alpha).shape[0] != 1 or gr.const(alpha).shape[2] != 1:
            continue
        sq = gr.only_consumer(sin.output[0], "Mul")
        if sq is None or list(sq.input) != [sin.output[0]] * 2:
            continue
        scale = gr.only_consumer(sq.output[0], "Mul")
        r = other(scale, sq.output[0]) if scale else None
        if r is None:
            continue
        add = gr.only_consumer(scale.output[0], "Add")
        if add is None or other(add, scale.output[0]) != x:
            continue
        node = helper.make_node("Snake", [x, alpha, r], [add.output[0]], name=sin.name + "/Snake",
                                domain=SNAKE_DOMAIN)
        idx = list(gr.g.node).index(pre)
        for dead in (pre, sin, sq, scale, add):
            gr.g.node.remove(dead)
        gr.g.node.insert(idx, node)
        gr.refresh()
        done += 1
    if done and not any(o.domain == SNAKE_DOMAIN for o in gr.model.opset_import):
        gr.model.opset_import.append(helper.make_opsetid(SNAKE_DOMAIN, 1))
    return done


def rewrite_ada_snakes(gr):
    """Snake(Add(Mul(InstanceNormalization(h), scale), shift), alpha, r), the norm with
    scale 1 and bias 0 (rewrite_norms' own) and each value read only by the next ->
    one ai.kokoro_edge:AdaSnake(h, scale, shift, alpha, r) with the norm's epsilon."""
    def other(n, name):
        rest = [i for i in n.input if i != name]
        return rest[0] if len(n.input) == 2 and len(rest) == 1 else None

    done = 0
    for sn in [n for n in gr.g.node if n.op_type == "Snake" and n.domain == SNAKE_DOMAIN]:
        add = gr.prod.get(sn.input[0])
        if add is None or add.op_type != "Add" or len(gr.cons[add.output[0]]) != 1:
            continue
        mul = next((gr.prod[i] for i in add.input if i in gr.prod and gr.prod[i].op_type == "Mul"), None)
        if mul is None or len(gr.cons[mul.output[0]]) != 1:
            continue
        shift = other(add, mul.output[0])
        norm = next((gr.prod[i] for i in mul.input if i in gr.prod
                     and gr.prod[i].op_type == "InstanceNormalization"), None)
        if shift is None or norm is None or len(gr.cons[norm.output[0]]) != 1:
            continue
        scale = other(mul, norm.output[0])
        ones, zeros = gr.const(norm.input[1]), gr.const(norm.input[2])
        if scale is None or ones is None or zeros is None or not (np.all(ones == 1) and np.all(zeros == 0)):
            continue
        node = helper.make_node("AdaSnake", [norm.input[0], scale, shift, sn.input[1], sn.input[2]], [sn.output[0]],
                                name=sn.name.replace("/Snake", "/AdaSnake"), domain=SNAKE_DOMAIN,
                                epsilon=float(attr(norm, "epsilon", 1e-5)))
        idx = list(gr.g.node).index(norm)
        for dead in (norm, mul, add, sn):
            gr.g.node.remove(dead)
        gr.g.node.insert(idx, node)
        gr.refresh()
        done += 1
    return done


def rewrite_convs(gr):
    done = 0
    axis = gr.add_init(np.array([2], np.int64), "/rewrite/axis2")
    for n in list(gr.g.node):
        if n.op_type != "Conv":
            continue
        w = gr.const(n.input[1])
        if w is None or w.ndim != 3 or attr(n, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            continue
        k = w.shape[2]
        pads = list(attr(n, "pads", [0, 0]))
        node = helper.make_node(
            "Conv",
            [n.name + "/x4"] + [gr.add_init(w[:, :, None, :], n.name + "/w4")] + list(n.input[2:]),
            [n.name + "/y4"],
            name=n.name + "/2d",
            kernel_shape=[1, k],
            pads=[0, pads[0], 0, pads[1]],
            strides=[1] + list(attr(n, "strides", [1])),
            dilations=[1] + list(attr(n, "dilations", [1])),
            group=attr(n, "group", 1),
        )
        up = helper.make_node("Unsqueeze", [n.input[0], axis], [n.name + "/x4"], name=n.name + "/unsq")
        down = helper.make_node("Squeeze", [n.name + "/y4", axis], [n.output[0]], name=n.name + "/sq")
        idx = list(gr.g.node).index(n)
        gr.g.node.remove(n)
        for j, m in enumerate((up, node, down)):
            gr.g.node.insert(idx + j, m)
        done += 1
    gr.refresh()
    return done


def prune(gr):
    """Drop initializers no node reads any more."""
    used = {i for n in gr.g.node for i in n.input}
    keep = [t for t in gr.g.initializer if t.name in used]
    del gr.g.initializer[:]
    gr.g.initializer.extend(keep)


REWRITES = {"norm": rewrite_norms, "pow": rewrite_pows, "stft": rewrite_stft, "snake": rewrite_snakes,
            "adasnake": rewrite_ada_snakes, "conv2d": rewrite_convs}


def apply(model, names):
    """Apply the named rewrites in REWRITES' order; the count of each."""
    unknown = [r for r in names if r not in REWRITES]
    if unknown:
        raise ValueError(f"unknown rewrite(s): {unknown}; known: {list(REWRITES)}")
    gr = Graph(model)
    counts = {r: f(gr) for r, f in REWRITES.items() if r in names}
    prune(gr)
    return counts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--only", default=",".join(REWRITES))
    a = ap.parse_args()
    model = onnx.load(a.src)
    try:
        counts = apply(model, [r for r in a.only.split(",") if r])
    except ValueError as e:
        sys.exit(str(e))
    onnx.checker.check_model(model)
    onnx.save(model, a.dst)
    print(" ".join(f"{k}={v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
