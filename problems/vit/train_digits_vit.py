"""Train the digits ViT: ``python -m problems.vit.train_digits_vit [--seed S] [--out FILE]``.

The digits CNN's training (``problems.cnn.train_digits``: one thread, deterministic
algorithms, Adam with a one-cycle schedule, repeatable bit for bit on one machine but
not across machines) with this network and its settings. Writes the weights
(safetensors) and, beside them, a JSON log with the seed, the settings, the torch
version, the CPU capability, the loss of every epoch, the train and held-out top-1 and
the wall time; the problem loads the file shipped in ``problems/vit/weights/``.
"""

from __future__ import annotations

from problems.cnn import train_digits
from problems.cnn.digits import NUM_TRAIN, SPLIT_SEED
from problems.vit.digits_vit import WEIGHTS, DigitsViT

TRAIN_SETTINGS = {
    "arch": "digits-vit-v1",
    "epochs": 30,
    "batch_size": 32,
    "max_lr": 2e-3,
    "weight_decay": 1e-4,
    "num_train": NUM_TRAIN,
    "split_seed": SPLIT_SEED,
    "threads": 1,
}
"""Everything that changes the trained weights (with the seed and the machine)."""


def main(argv: list[str] | None = None) -> None:
    train_digits.main(argv, __doc__, TRAIN_SETTINGS, WEIGHTS, DigitsViT)


if __name__ == "__main__":
    main()
