"""The data2vec teacher: an exponential moving average of the student's Transformer, and the
regression targets it makes (FunASR's EMAModule and the target half of Data2VecEncoder.forward).
"""

import copy
from typing import Iterable, List

import torch
import torch.nn.functional as F
from torch import nn


def annealed_decay(start: float, end: float, num_updates: int, anneal_end_step: int) -> float:
    """Linear from ``start`` at update 0 to ``end`` at ``anneal_end_step``, ``end`` after."""
    if num_updates >= anneal_end_step:
        return end
    return end - (end - start) * (1 - num_updates / anneal_end_step)


class EMATeacher:
    """A frozen copy of a module updated as teacher = decay * teacher + (1 - decay) * student.

    Deliberately not an nn.Module attribute of the model (as in FunASR): its weights are not in the
    state dict, so FunASR's checkpoints load with strict=True and ours stay FunASR's layout; after a
    resume the teacher starts again from the student. ``copied_keys`` (the positional conv with
    ema_layers_only) are copied from the student instead of averaged.
    """

    def __init__(self, student: nn.Module, decay: float, copied_keys: Iterable[str] = ()):
        self.model = copy.deepcopy(student).requires_grad_(False).eval()
        self.decay = decay
        self.copied_keys = set(copied_keys)

    @torch.no_grad()
    def step(self, student: nn.Module) -> None:
        teacher_state = self.model.state_dict()
        for key, value in student.state_dict().items():
            if key in self.copied_keys:
                teacher_state[key].copy_(value)
            else:
                teacher_state[key].mul_(self.decay).add_(value.to(teacher_state[key].dtype), alpha=1 - self.decay)


def regression_targets(layer_results: List[torch.Tensor], instance_norm_target_layer: bool = False,
                       batch_norm_target_layer: bool = False, group_norm_target_layer: bool = False,
                       layer_norm_target_layer: bool = False, layer_norm_targets: bool = False,
                       instance_norm_targets: bool = False) -> torch.Tensor:
    """The average of the teacher's top-k feed-forward outputs (each (B, T, D)), normalised as
    FunASR does -> (B, T, D).

    FunASR holds these as (T, B, D) and permutes to (B, D, T) only for the per-layer instance/batch
    norm; the group norm and the target instance norm read whichever layout that leaves, so this
    follows the same layouts (with the default instance_norm_target_layer only: per utterance and
    channel over all T frames, padding included).
    """
    results = [r.transpose(0, 1) for r in layer_results]  # FunASR's (T, B, D)
    permuted = instance_norm_target_layer or batch_norm_target_layer
    if permuted:
        results = [r.permute(1, 2, 0) for r in results]  # (B, D, T)
    if batch_norm_target_layer:
        results = [F.batch_norm(r.float(), running_mean=None, running_var=None, training=True) for r in results]
    if instance_norm_target_layer:
        results = [F.instance_norm(r.float()) for r in results]
    if permuted:
        results = [r.transpose(1, 2) for r in results]  # (B, T, D)
    if group_norm_target_layer:
        results = [F.layer_norm(r.float(), r.shape[-2:]) for r in results]
    if layer_norm_target_layer:
        results = [F.layer_norm(r.float(), r.shape[-1:]) for r in results]
    y = sum(results) / len(results)
    if layer_norm_targets:
        y = F.layer_norm(y.float(), y.shape[-1:])
    if instance_norm_targets:
        y = F.instance_norm(y.float().transpose(1, 2)).transpose(1, 2)
    return y if permuted else y.transpose(0, 1)
