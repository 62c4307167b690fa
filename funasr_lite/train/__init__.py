"""Training: trainer (single process / torchrun DDP), optimizers, schedulers, checkpoints, averaging."""
