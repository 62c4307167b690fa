"""Worker for the DDP gradient test (a module of its own so spawned processes can import it)."""

import os

import torch
from torch.nn.parallel import DistributedDataParallel

from funasr_lite.models import build_model
from funasr_lite.train.distributed import init_distributed, shutdown_distributed


def ddp_gradient_worker(rank, world_size, port, config, batch_path, out_path):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    context = init_distributed("cpu")
    try:
        assert context.backend == "gloo" and context.world_size == world_size
        torch.manual_seed(rank + 100)  # different init per rank: DDP must broadcast rank 0's weights
        model = build_model(config)
        if rank == 0:
            torch.manual_seed(0)
            model = build_model(config)
        # sampling_ratio 0 leaves decoder.embed without gradient: DDP must be told.
        ddp = DistributedDataParallel(model, find_unused_parameters=True)
        batch = torch.load(batch_path, weights_only=True)
        per_rank = batch["speech"].shape[0] // world_size
        part = slice(rank * per_rank, (rank + 1) * per_rank)
        loss, _, _ = ddp(batch["speech"][part], batch["speech_lengths"][part], batch["text"][part], batch["text_lengths"][part])
        loss.backward()
        grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
        torch.save({"grads": grads, "loss": loss.detach()}, f"{out_path}.rank{rank}")
    finally:
        shutdown_distributed(context)
