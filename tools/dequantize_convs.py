"""Rewrite the int8 Kokoro graph so its convolutions run as float Conv.

The published int8 model was made with dynamic quantization: every Conv became
DynamicQuantizeLinear -> ConvInteger -> Add(int32 bias) -> Cast -> Mul(scale).
ONNX Runtime's CPU ConvInteger kernel is slow (it dominates inference time),
while its float Conv kernels are well optimized. This keeps the int8 weights'
values (dequantized exactly: (Wq - zp) * scale) and removes the activation
quantization, so the result is numerically at least as good.

usage: dequantize_convs.py IN.onnx OUT.onnx [--scope SUBSTRING]
"""
import argparse
import collections

import numpy as np
import onnx
from onnx import helper, numpy_helper


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--scope", default="", help="only convert ConvInteger nodes whose name contains this")
    a = ap.parse_args()
    m = onnx.load(a.src)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    prod = {o: n for n in g.node for o in n.output}
    cons = collections.defaultdict(list)
    for n in g.node:
        for i in n.input:
            cons[i].append(n)
    remove, add, converted = set(), [], 0
    for c in [n for n in g.node if n.op_type == "ConvInteger" and a.scope in n.name]:
        xq, wq_name, _xzp, wzp_name = c.input
        dql = prod[xq]
        assert dql.op_type == "DynamicQuantizeLinear", c.name
        chain = [cons[c.output[0]][0]]
        bias_name = None
        if chain[0].op_type == "Add":  # int32 bias, quantized with the dynamic scale
            node = prod[chain[0].input[1]]  # Reshape(Cast(Floor(Div(bias, scale))))
            while node.op_type != "Div":
                node = prod[node.input[0]]
            bias_name = node.input[0]
            chain.append(cons[chain[-1].output[0]][0])
        assert chain[-1].op_type == "Cast", c.name
        chain.append(cons[chain[-1].output[0]][0])
        mul_n = chain[-1]
        assert mul_n.op_type == "Mul", c.name
        scale_mul = prod[mul_n.input[1]] if mul_n.input[1] in prod else prod[mul_n.input[0]]
        w_scale = next(i for i in scale_mul.input if i in inits)
        wq = numpy_helper.to_array(inits[wq_name]).astype(np.float32)
        zp = numpy_helper.to_array(inits[wzp_name]).astype(np.float32)
        scale = numpy_helper.to_array(inits[w_scale]).astype(np.float32)
        if zp.ndim == 1:
            zp = zp.reshape(-1, *([1] * (wq.ndim - 1)))
        if scale.ndim == 1:
            scale = scale.reshape(-1, *([1] * (wq.ndim - 1)))
        w = (wq - zp) * scale
        wname = wq_name + "_dequantized"
        g.initializer.append(numpy_helper.from_array(w.astype(np.float32), wname))
        attrs = {at.name: helper.get_attribute_value(at) for at in c.attribute}
        ins = [dql.input[0], wname] + ([bias_name] if bias_name else [])
        add.append(helper.make_node("Conv", ins, [mul_n.output[0]], name=c.name.replace("_quant", ""), **attrs))
        remove.update([id(c)] + [id(n) for n in chain])
        converted += 1
    kept = [n for n in g.node if id(n) not in remove] + add
    # Drop nodes whose outputs nobody uses any more (the quantize/bias chains).
    outputs = {o.name for o in g.output}
    while True:
        used = {i for n in kept for i in n.input} | outputs
        alive = [n for n in kept if any(o in used for o in n.output)]
        if len(alive) == len(kept):
            break
        kept = alive
    del g.node[:]
    g.node.extend(kept)
    used = {i for n in kept for i in n.input}
    live_inits = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(live_inits)
    # Conv must come after its producers: topologically sort.
    order, seen, by_out = [], set(), {o: n for n in kept for o in n.output}
    avail = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    pending = list(kept)
    while pending:
        rest = []
        for n in pending:
            if all(i in avail for i in n.input):
                order.append(n)
                avail.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise SystemExit("cycle or missing input while sorting")
        pending = rest
    del g.node[:]
    g.node.extend(order)
    onnx.save(m, a.dst)
    print(f"converted {converted} ConvInteger nodes")


if __name__ == "__main__":
    main()
