#!/usr/bin/env python3
"""int8 inference of one ResNet-50 + SSM checkpoint against its peers, side by side in one run.

    .venv/bin/python bench/int8_peers.py --float CK.pt --int8 CK-int8.pt --images DIR \\
        [--splitshare build/splitshare] [--bench build/bench/bench_quantized] [--out DIR] [--threads 2]

CK-int8.pt is what `splitshare quantize --checkpoint CK.pt` wrote. Every row runs the same
network at 224x224 on random inputs, batch 1 and 64, with --threads threads:

  splitshare fp32 / int8     build/bench/bench_quantized --checkpoint CK-int8.pt (InferenceModel,
                             QuantizedModel)
  onnxruntime fp32           `splitshare export` of CK.pt
  onnxruntime int8 (ORT)     onnxruntime.quantization.quantize_static of that export: QDQ,
                             per-channel int8 weights, uint8 activations, MinMax calibration on
                             --calibration images of DIR (the checkpoint's preprocessing, through
                             `splitshare predict --dump-inputs`)
  onnxruntime int8 (ours)    `splitshare export` of CK-int8.pt (our QDQ graph)
  torch.compile int8         with --torchao DIR (bench/setup_torchao.sh): PyTorch 2 export
                             quantization, torchao's X86InductorQuantizer (its default config:
                             per-channel int8 weights, uint8 activations), calibrated on the same
                             images, converted, then torch.compile with inductor's freezing (what
                             torchao's tutorial prescribes for CPU)

For each int8 ONNX file the script also counts the int8 operators (QLinearConv, QLinearAdd, ...)
in ONNX Runtime's optimised graph: the proof that it ran its int8 kernels. Prints a markdown
table and writes OUT/int8_peers.json.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import time

import numpy
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static


def run(cmd):
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)


def calibration_inputs(args):
    """[N, C, H, W] float: --calibration images of DIR, every k-th of the sorted list."""
    files = sorted(p for p in glob.glob(os.path.join(args.images, "**", "*"), recursive=True) if os.path.isfile(p))
    step = max(1, len(files) // args.calibration)
    chosen = files[::step][: args.calibration]
    dump = os.path.join(args.out, "calibration.pt")
    run([args.splitshare, "predict", "--checkpoint", args.float, "--no-progress", "--dump-inputs", dump,
         "--output", os.path.join(args.out, "calibration.csv")] + chosen)
    return torch.load(dump)


class Reader(CalibrationDataReader):
    def __init__(self, images, batch=16):
        self.batches = [images[i:i + batch].numpy() for i in range(0, len(images), batch)]

    def get_next(self):
        return {"input": self.batches.pop(0)} if self.batches else None


def session(path, threads, optimized=None):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if optimized:
        options.optimized_model_filepath = optimized
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def int8_ops(path, threads):
    """Operator counts of ONNX Runtime's optimised graph of `path` that run on int8 data."""
    optimized = path + ".optimized.onnx"
    session(path, threads, optimized)
    counts = {}
    for node in onnx.load(optimized).graph.node:
        if node.op_type.startswith("QLinear") or node.op_type in ("QuantizeLinear", "DequantizeLinear", "MaxPool"):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def ort_rate(path, batch, threads, seconds):
    s = session(path, threads)
    x = numpy.random.default_rng(0).standard_normal((batch, 3, 224, 224), dtype=numpy.float32)
    for _ in range(2):
        s.run(None, {"input": x})
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or runs < 3:
        s.run(None, {"input": x})
        runs += 1
    return batch * runs / (time.perf_counter() - start)


class Logits(torch.nn.Module):
    """The combined logits only: torch.export wants tensors out."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).logits


def inductor_rates(args, calibration):
    """torch.compile of torchao's X86InductorQuantizer int8 model, images/s by batch."""
    sys.path.insert(0, args.torchao)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import splitshare_torch as ss
    import torch._inductor.config as inductor_config
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    inductor_config.freezing = True
    model = Logits(ss.load_checkpoint(args.float)[0]).eval()
    for m in model.modules():  # in-place ReLUs give the quantizer's conv + add pattern two outputs
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
    rates = {}
    for batch in (1, 64):
        x = torch.randn(batch, 3, 224, 224)
        with torch.no_grad():
            exported = torch.export.export(model, (x,)).module()
            quantizer = xiq.X86InductorQuantizer()
            quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
            prepared = prepare_pt2e(exported, quantizer)
            for i in range(0, len(calibration), batch):
                part = calibration[i:i + batch]
                if len(part) == batch:
                    prepared(part)
            compiled = torch.compile(convert_pt2e(prepared))
            start = time.perf_counter()
            for _ in range(2):
                compiled(x)
            print(f"torch.compile int8 batch {batch}: compiled in {time.perf_counter() - start:.0f} s", file=sys.stderr)
            runs, start = 0, time.perf_counter()
            while time.perf_counter() - start < args.seconds or runs < 3:
                compiled(x)
                runs += 1
            rates[("torch.compile int8 (torchao X86InductorQuantizer)", batch)] = \
                batch * runs / (time.perf_counter() - start)
    return rates


def splitshare_rates(args):
    out = subprocess.run([args.bench, "--checkpoint", args.int8, "--benchmark_format=json",
                          f"--benchmark_min_time={args.seconds}"], check=True, capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
    rates = {}
    for b in json.loads(out.stdout)["benchmarks"]:
        # "infer/int8/batch:64/real_time"
        parts = b["name"].split("/")
        precision, batch = parts[1], int(parts[2].split(":")[1])
        rates[(f"splitshare {precision}", batch)] = b["images_per_s"]
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--float", required=True)
    parser.add_argument("--int8", required=True)
    parser.add_argument("--images", required=True, help="image folder for ORT's calibration")
    parser.add_argument("--calibration", type=int, default=512)
    parser.add_argument("--splitshare", default="build/splitshare")
    parser.add_argument("--bench", default="build/bench/bench_quantized")
    parser.add_argument("--out", default="runs/int8-peers")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--torchao", help="folder holding torchao (bench/setup_torchao.sh): adds the torch.compile row")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(args.threads)
    files = {name: os.path.join(args.out, name + ".onnx") for name in ("fp32", "ort-int8", "ours-int8")}
    run([args.splitshare, "export", "--checkpoint", args.float, "--out", files["fp32"]])
    run([args.splitshare, "export", "--checkpoint", args.int8, "--out", files["ours-int8"]])
    calibration = calibration_inputs(args)
    quantize_static(files["fp32"], files["ort-int8"], Reader(calibration), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    rates = splitshare_rates(args)
    for label, key in (("onnxruntime fp32", "fp32"), ("onnxruntime int8 (ORT quantize_static)", "ort-int8"),
                       ("onnxruntime int8 (our QDQ export)", "ours-int8")):
        for batch in (1, 64):
            rates[(label, batch)] = ort_rate(files[key], batch, args.threads, args.seconds)
    if args.torchao:
        rates.update(inductor_rates(args, calibration))
    ops = {key: int8_ops(files[key], args.threads) for key in ("ort-int8", "ours-int8")}
    print("| runtime | batch 1 img/s | batch 64 img/s |\n| --- | ---: | ---: |")
    for label in dict.fromkeys(label for label, _ in rates):
        print(f"| {label} | {rates[(label, 1)]:.1f} | {rates[(label, 64)]:.1f} |")
    print("int8 operators in ONNX Runtime's optimised graphs:", json.dumps(ops))
    with open(os.path.join(args.out, "int8_peers.json"), "w") as f:
        json.dump({"rates": [{"runtime": k[0], "batch": k[1], "images_per_s": v} for k, v in rates.items()],
                   "int8_ops": ops, "threads": args.threads, "seconds": args.seconds}, f, indent=1)


if __name__ == "__main__":
    main()
