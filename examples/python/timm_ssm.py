#!/usr/bin/env python3
"""A timm ResNet with the Split-and-Share head, trained from Python on data splitshare's loader
reads: the classifier swapped for splitshare.nn.SplitShareHead, the loss on the averaged logits
(the paper's joint training), the batches from splitshare.data (Fashion-MNIST by default, or any
`--data` the tool reads, e.g. imagefolder:DIR). Prints each epoch's loss, validation top-1 of the
head and of each split, and images/s.

    .venv/bin/pip install --no-build-isolation .        # once
    .venv/bin/python examples/python/timm_ssm.py --epochs 2
    .venv/bin/python examples/python/timm_ssm.py --data imagefolder:photos --image-size 160 --arch resnet18
"""
import argparse
import time

import timm
import torch
import torch.nn.functional as F

import splitshare


def evaluate(model, loader):
    """(top-1 of the averaged head, top-1 of each split) on `loader`, in %."""
    model.eval()
    correct, per_head, total = 0, None, 0
    with torch.no_grad():
        for images, labels in loader:
            out = model(images)
            correct += (out.logits.argmax(1) == labels).sum().item()
            hits = [(h.argmax(1) == labels).sum().item() for h in out.head_logits]
            per_head = hits if per_head is None else [a + b for a, b in zip(per_head, hits)]
            total += labels.numel()
    return 100 * correct / total, [100 * h / total for h in per_head]


def train_epoch(model, loader, optimizer, schedule):
    """Mean training loss of one epoch and its images/s."""
    model.train()
    loss_sum, batches, images_seen, start = 0.0, 0, 0, time.perf_counter()
    for images, labels in loader:
        loss = F.cross_entropy(model(images).logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        loss_sum, batches, images_seen = loss_sum + loss.item(), batches + 1, images_seen + labels.numel()
    return loss_sum / max(batches, 1), images_seen / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="fashion-mnist", help="what the tool's --data takes (default fashion-mnist)")
    parser.add_argument("--arch", default="resnet10t", help="a timm model with a Linear classifier (default resnet10t)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--splits", type=int, default=4)
    parser.add_argument("--image-size", type=int, help="photo crop size (photo folders; default the tool's)")
    parser.add_argument("--limit-train", type=int, help="use only N training images (quick runs)")
    parser.add_argument("--limit-val", type=int, help="use only N validation images")
    parser.add_argument("--workers", type=int, default=2, help="image decoding threads (photo folders)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    data = splitshare.data.open(args.data, batch_size=args.batch_size, seed=args.seed, workers=args.workers,
                                image_size=args.image_size, limit_train=args.limit_train, limit_val=args.limit_val)
    model = timm.create_model(args.arch, pretrained=False, num_classes=len(data.classes),
                              in_chans=data.preprocess["channels"])
    model = splitshare.nn.replace_classifier(model, splits=args.splits)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.epochs * len(data.train))
    print(f"{args.arch} + SplitShareHead({args.splits} splits), {len(data.classes)} classes, "
          f"{data.train.num_samples} training / {data.val.num_samples} validation images")
    for epoch in range(args.epochs):
        data.train.set_epoch(epoch)
        loss, speed = train_epoch(model, data.train, optimizer, schedule)
        top1, heads = evaluate(model, data.val)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss:.4f}, val top-1 {top1:.2f} % "
              f"(splits {' / '.join(f'{h:.2f}' for h in heads)}), {speed:.0f} images/s", flush=True)


if __name__ == "__main__":
    main()
