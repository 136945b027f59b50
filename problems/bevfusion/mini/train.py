"""Train the mini BEVFusion on synthetic scenes: ``python -m problems.bevfusion.mini.train``.

One torch thread (the machine is shared), a fixed pool of training scenes generated up
front and a fixed number of steps, so a run is reproducible; the shipped checkpoint took
1,681 s on one core with the other core busy. Writes the weights (safetensors) and a JSON
log with the seed, the settings and the loss curve beside them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from mmengine.dataset import pseudo_collate

from problems.bevfusion.mini.checkpoint import (
    WEIGHTS,
    initialised_model,
    load_config,
)
from problems.bevfusion.mini.registry import DATASETS
from problems.weights import write_trained

SETTINGS = {
    "steps": 4000,
    "batch_size": 4,
    "train_scenes": 1500,
    "max_lr": 2e-3,
    "weight_decay": 1e-2,
    "grad_clip": 10.0,
    "threads": 1,
}
LOG_EVERY = 50


def train(seed: int, settings: dict, log: list[dict]) -> torch.nn.Module:
    """Train from scratch with ``seed``; appends averaged losses to ``log`` as it goes."""
    torch.manual_seed(seed)
    model = initialised_model()
    dataset = DATASETS.build(
        load_config().train_dataset
        | {"num_scenes": settings["train_scenes"], "seed": seed}
    )
    start = time.perf_counter()
    pool = [dataset[i] for i in range(len(dataset))]
    log.append({"event": "scenes generated", "seconds": time.perf_counter() - start})
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings["max_lr"], weight_decay=settings["weight_decay"]
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, settings["max_lr"], total_steps=settings["steps"]
    )
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    totals: dict[str, float] = {}
    model.train()
    for step in range(1, settings["steps"] + 1):
        if len(order) < settings["batch_size"]:
            order += torch.randperm(len(pool), generator=generator).tolist()
        chosen, order = order[: settings["batch_size"]], order[settings["batch_size"] :]
        data = model.data_preprocessor(pseudo_collate([pool[i] for i in chosen]), True)
        losses = model(**data, mode="loss")
        optimizer.zero_grad()
        sum(losses.values()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings["grad_clip"])
        optimizer.step()
        schedule.step()
        for name, value in losses.items():
            totals[name] = totals.get(name, 0.0) + value.item() / LOG_EVERY
        if step % LOG_EVERY == 0:
            entry = {"step": step, "seconds": round(time.perf_counter() - start, 1)}
            log.append(entry | {k: round(v, 4) for k, v in totals.items()})
            print(json.dumps(log[-1]), flush=True)
            totals = {}
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=SETTINGS["steps"])
    parser.add_argument("--train-scenes", type=int, default=SETTINGS["train_scenes"])
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args()
    settings = SETTINGS | {"steps": args.steps, "train_scenes": args.train_scenes}
    torch.set_num_threads(settings["threads"])
    log: list[dict] = []
    start = time.perf_counter()
    model = train(args.seed, settings, log)
    record = {
        "seed": args.seed,
        "settings": settings,
        "torch": torch.__version__,
        "train_seconds": round(time.perf_counter() - start, 1),
        "log": log,
    }
    write_trained(args.out, model, record)


if __name__ == "__main__":
    main()
