"""Cut the Kokoro graph into its encoder and decoder halves.

The cut is where the decoder starts (/encoder -> /decoder): the encoder (text
encoder, BERT, LSTMs, duration and prosody predictors) gives the frame-aligned
text features, F0 and energy curves and the frames per token; the decoder turns
a window of those frames into audio. Decoding all frames reproduces the whole
graph exactly.

usage: split_graph.py MODEL.onnx ENCODER.onnx DECODER.onnx
"""
import sys

import onnx
from onnx.utils import Extractor

# The tensors at the cut (kokoro_core::assets::CUT_* name the same).
FEATURES = ["/encoder/MatMul_1_output_0", "/encoder/Reshape_output_0", "/encoder/Reshape_1_output_0"]
DURATIONS = "/encoder/Clip_output_0"


def main():
    src, enc_out, dec_out = sys.argv[1:4]
    m = onnx.load(src)
    ex = Extractor(m)
    enc = ex.extract_model(["tokens", "style", "speed"], FEATURES + [DURATIONS])
    dec = ex.extract_model(FEATURES + ["style"], ["audio"])
    onnx.checker.check_model(enc)
    onnx.checker.check_model(dec)
    onnx.save(enc, enc_out)
    onnx.save(dec, dec_out)
    print(f"encoder: {len(enc.graph.node)} nodes, decoder: {len(dec.graph.node)} nodes")


if __name__ == "__main__":
    main()
