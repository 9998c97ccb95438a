"""The Python package's SSM head (splitshare.nn.SplitShareHead, the fused operator) against the same
head in plain PyTorch (python/splitshare_torch.py's SplitAndShare), side by side in one process:

  - the head alone, forward + backward, in training mode (ResNet-50's 2,048 features, 1,000 classes);
  - a ResNet-50 (torchvision) training step with either head (SGD, cross-entropy on the mean);

each eager and under torch.compile (inductor). Median of --repeats timed runs after warm-up.

    SPLITSHARE_OPS_LIBRARY=build/python/splitshare/_ops.so PYTHONPATH=python \\
        .venv/bin/python bench/python_head.py [--threads 2] [--batch 256] [--step-batch 16] [--json]
"""
import argparse
import json
import pathlib
import platform
import statistics
import sys
import time

import torch
import torchvision

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "python"))
import splitshare  # noqa: E402
import splitshare_torch  # noqa: E402


def heads(features, classes):
    ours = splitshare.nn.SplitShareHead(features, classes)
    plain = splitshare_torch.SplitAndShare(features, classes)
    plain.load_state_dict(ours.state_dict())
    return {"splitshare": ours, "pytorch": plain}


def timed(step, warmup, repeats):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def head_step(head, x, labels):
    def step():
        head.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(head(x).logits, labels).backward()
    return step


def model_step(head, batch, compiled):
    model = torchvision.models.resnet50()
    model.fc = head
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    forward = torch.compile(model) if compiled else model
    images = torch.randn(batch, 3, 224, 224).to(memory_format=torch.channels_last)
    labels = torch.randint(0, head.fc[0].out_features, (batch,))

    def step():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(forward(images).logits, labels).backward()
        optimizer.step()
    return step


def run(args):
    torch.manual_seed(0)
    rows = []
    x = torch.randn(args.batch, 2048)
    labels = torch.randint(0, 1000, (args.batch,))
    for mode in ("eager", "compiled"):
        for name, head in heads(2048, 1000).items():
            module = torch.compile(head) if mode == "compiled" else head
            seconds = timed(head_step(module, x, labels), args.warmup, args.repeats)
            rows.append({"workload": f"head fwd+bwd b{args.batch}", "mode": mode, "head": name,
                         "ms": 1000 * seconds})
    for mode in ("eager", "compiled"):
        for name, head in heads(2048, 1000).items():
            step = model_step(head, args.step_batch, compiled=mode == "compiled")
            seconds = timed(step, args.warmup, max(3, args.repeats // 4))
            rows.append({"workload": f"ResNet-50 train step b{args.step_batch}", "mode": mode, "head": name,
                         "ms": 1000 * seconds})
    return rows


def cpu_model():
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch", type=int, default=256, help="head-alone batch (default 256)")
    parser.add_argument("--step-batch", type=int, default=16, help="ResNet-50 training-step batch (default 16)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = run(args)
    if args.json:
        print(json.dumps({"cpu": cpu_model(), "threads": args.threads, "torch": torch.__version__, "rows": rows}))
        return
    print(f"CPU: {cpu_model()}, {args.threads} threads, torch {torch.__version__}")
    print(f"{'workload':<28} {'mode':<9} {'splitshare ms':>14} {'pytorch ms':>11} {'speed-up':>9}")
    for workload in dict.fromkeys(r["workload"] for r in rows):
        for mode in ("eager", "compiled"):
            ms = {r["head"]: r["ms"] for r in rows if r["workload"] == workload and r["mode"] == mode}
            print(f"{workload:<28} {mode:<9} {ms['splitshare']:>14.2f} {ms['pytorch']:>11.2f} "
                  f"{ms['pytorch'] / ms['splitshare']:>8.2f}x")


if __name__ == "__main__":
    main()
