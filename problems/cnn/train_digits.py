"""Train the digits CNN: ``python -m problems.cnn.train_digits [--seed S] [--out FILE]``.

One thread, deterministic algorithms and a fixed seed make a run repeat bit for bit on
one machine, but not across machines: the same seed gives other weights on another CPU
(its kernels sum in another order). So the problem never trains; it loads the weights
this command wrote once, shipped in ``problems/cnn/weights/``. Writes the weights
(safetensors) and, beside them, a JSON log with the seed, the settings, the torch
version, the CPU capability torch ran with, the loss of every epoch, the train and
held-out top-1 and the wall time.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from fitness.classification import top1_accuracy
from problems.cnn.digits import (
    NUM_TRAIN,
    SPLIT_SEED,
    WEIGHTS,
    DigitsNet,
    load_splits,
)
from problems.weights import write_trained

TRAIN_SETTINGS = {
    "arch": "resdigits-v2",
    "epochs": 8,
    "batch_size": 32,
    "max_lr": 3e-3,
    "weight_decay": 1e-4,
    "num_train": NUM_TRAIN,
    "split_seed": SPLIT_SEED,
    "threads": 1,
}
"""Everything that changes the trained weights (with the seed and the machine)."""


def steps_per_epoch(settings: dict) -> int:
    return -(-NUM_TRAIN // settings["batch_size"])


def train_digits_net(
    seed: int,
    settings: dict = TRAIN_SETTINGS,
    steps: int | None = None,
    log: list[dict] | None = None,
    make_model: Callable[[], nn.Module] = DigitsNet,
) -> nn.Module:
    """Train ``make_model()`` from scratch, bit-for-bit reproducibly on one machine.

    Adam with a one-cycle schedule over ``settings["epochs"]`` epochs, so the last one
    lands on a settled minimum; ``steps`` stops after that many optimizer steps instead
    (the schedule then spans those steps; for quick checks). Appends each epoch's mean
    loss to ``log``. One thread and deterministic algorithms remove the reduction-order
    noise; the global RNG, thread count and determinism flag are restored, so callers
    are left untouched.
    """
    (images, labels), _ = load_splits()
    batch_size = settings["batch_size"]
    total = settings["epochs"] * steps_per_epoch(settings) if steps is None else steps
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(settings["threads"])
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = make_model()
            optimizer = torch.optim.Adam(
                model.parameters(),
                lr=settings["max_lr"],
                weight_decay=settings["weight_decay"],
            )
            schedule = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, settings["max_lr"], total_steps=total
            )
            loss_fn = nn.CrossEntropyLoss()
            model.train()
            step, epoch = 0, 0
            while step < total:
                losses = []
                for idx in torch.randperm(len(labels)).split(batch_size):
                    if step == total:
                        break
                    optimizer.zero_grad()
                    loss = loss_fn(model(images[idx]), labels[idx])
                    loss.backward()
                    optimizer.step()
                    schedule.step()
                    losses.append(loss.item())
                    step += 1
                epoch += 1
                if log is not None:
                    mean = sum(losses) / len(losses)
                    log.append({"epoch": epoch, "steps": step, "loss": round(mean, 5)})
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    return model.eval()


def accuracies(model: nn.Module) -> dict[str, float]:
    """Top-1 of the trained network on the training and the held-out split."""
    train, held_out = load_splits()
    with torch.no_grad():
        return {
            "train_top1": round(top1_accuracy(model(train[0]), train[1]), 4),
            "held_out_top1": round(top1_accuracy(model(held_out[0]), held_out[1]), 4),
        }


def main(
    argv: list[str] | None = None,
    description: str = __doc__,
    settings: dict = TRAIN_SETTINGS,
    weights: Path = WEIGHTS,
    make_model: Callable[[], nn.Module] = DigitsNet,
) -> None:
    """The command: train ``make_model()`` with ``settings`` and write it to ``--out``
    (default ``weights``); other networks on the digits reuse it with their own."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=settings["epochs"])
    parser.add_argument(
        "--steps",
        type=int,
        help="stop after this many optimizer steps (default: every step of every epoch)",
    )
    parser.add_argument(
        "--out", type=Path, default=weights, help=f"weights file (default: {weights})"
    )
    args = parser.parse_args(argv)
    if args.epochs < 1 or (args.steps is not None and args.steps < 1):
        parser.error("--epochs and --steps must be at least 1")
    settings = settings | {"epochs": args.epochs}
    log: list[dict] = []
    start = time.perf_counter()
    model = train_digits_net(args.seed, settings, args.steps, log, make_model)
    train_seconds = time.perf_counter() - start
    record = {
        "seed": args.seed,
        "settings": settings,
        "steps": log[-1]["steps"],
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "train_seconds": round(train_seconds, 1),
        **accuracies(model),
        "log": log,
    }
    write_trained(args.out, model, record)
    print(json.dumps({k: v for k, v in record.items() if k != "log"}))


if __name__ == "__main__":
    main()
