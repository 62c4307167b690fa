"""FunASR's Data2VecEncoder: a conv feature extractor over fbank frames, then the data2vec
Transformer; for pretraining, masked prediction of an EMA teacher's averaged layer outputs.

    fbank (B, T, input_size) -> conv stack (each (dim, kernel, stride), no padding: T' frames)
    -> LayerNorm -> post_extract_proj -> [mask spans with mask_emb] -> Transformer -> (B, T', D)

``forward`` gives the encoder output (what a Paraformer fine-tuned from data2vec reads);
``pretrain_forward`` gives the regression loss: the student's output at masked frames, through
``final_proj``, against the teacher's average of its top ``average_top_k_layers`` feed-forward
outputs on the unmasked input (instance-normalised per layer in FunASR's configs).

Constructor arguments are FunASR's, and so are the state-dict keys (its checkpoints load with
strict=True). Options FunASR's configs never change are accepted with their default only; other
values are refused by name (see docs/data2vec.md).
"""

import logging
import math
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from funasr_lite.models.data2vec.ema import EMATeacher, annealed_decay, regression_targets
from funasr_lite.models.data2vec.masking import compute_mask_indices
from funasr_lite.models.data2vec.transformer import ACTIVATIONS, Data2VecTransformer, TransposeLast
from funasr_lite.models.modules.dropout import Dropout

logger = logging.getLogger(__name__)

# Options accepted for FunASR's config schema with only the value FunASR's configs use.
_DEFAULT_ONLY = {
    "layer_type": "transformer", "mask_selection": "static", "mask_other": 0, "no_mask_overlap": False,
    "mask_channel_prob": 0.0,
}


def parse_conv_layers(spec: str):
    """FunASR's ``conv_feature_layers`` string, e.g. "[(512,2,2)] + [(512,2,2)]" -> [(dim, kernel,
    stride), ...]; evaluated with no names available (it is a list expression, nothing else)."""
    layers = eval(spec, {"__builtins__": {}}, {})  # noqa: S307 (FunASR's config format is a Python list expression)
    if not layers or any(len(layer) != 3 for layer in layers):
        raise ValueError(f"conv_feature_layers {spec!r}: expected a list of (dim, kernel, stride)")
    return [tuple(int(v) for v in layer) for layer in layers]


class _GradMultiply(torch.autograd.Function):
    """Identity forward, gradient scaled by ``scale`` (feature_grad_mult)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


class ConvFeatureExtractor(nn.Module):
    """(B, T, input_size) -> (B, dim, T'): bias-free Conv1d + GELU per layer, with a LayerNorm per
    layer (mode "layer_norm") or a GroupNorm on the first (mode "default"). Indices inside each
    block are FunASR's: 0 conv, 1 dropout, 2 norm, 3 GELU."""

    def __init__(self, conv_layers, mode: str, input_size: int):
        super().__init__()
        if mode not in ("default", "layer_norm"):
            raise ValueError(f"extractor_mode must be 'default' or 'layer_norm', got {mode!r}")
        self.stages = [(kernel, stride) for _, kernel, stride in conv_layers]  # for frame-rate arithmetic
        blocks, in_dim = [], input_size
        for index, (dim, kernel, stride) in enumerate(conv_layers):
            conv = nn.Conv1d(in_dim, dim, kernel, stride=stride, bias=False)
            nn.init.kaiming_normal_(conv.weight)
            if mode == "layer_norm":
                norm = [nn.Sequential(TransposeLast(), nn.LayerNorm(dim), TransposeLast())]
            else:
                norm = [nn.GroupNorm(dim, dim)] if index == 0 else []
            blocks.append(nn.Sequential(conv, Dropout(0.0), *norm, nn.GELU()))
            in_dim = dim
        self.conv_layers = nn.ModuleList(blocks)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        for kernel, stride in self.stages:
            lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
        return lengths

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)
        for block in self.conv_layers:
            x = block(x)
        return x


def batch_std(y: torch.Tensor) -> torch.Tensor:
    """Mean over channels of the std over all frames (of all workers under DDP): FunASR's
    target_var / pred_var statistics of (N, D) rows."""
    y = y.reshape(-1, y.size(-1))
    if dist.is_available() and dist.is_initialized():
        count = torch.tensor(float(y.size(0)), device=y.device)
        total, squares = y.sum(dim=0), (y ** 2).sum(dim=0)
        for t in (count, total, squares):
            dist.all_reduce(t)
        var = squares / (count - 1) - total ** 2 / (count * (count - 1))
        return torch.sqrt(var + 1e-6).mean()
    return torch.sqrt(y.var(dim=0) + 1e-6).mean()


class Data2VecEncoder(nn.Module):
    """FunASR's Data2VecEncoder (see the module docstring). Shapes: (B, T, input_size) -> (B, T', D)."""

    # Parameters only pretraining reads (a fine-tuned ASR model carries them unused): name prefixes.
    PRETRAINING_ONLY_PARAMETERS = ("final_proj.", "mask_emb")

    def __init__(
        self,
        input_size: int,
        extractor_mode: str = "layer_norm",
        conv_feature_layers: str = "[(512,2,2)] + [(512,2,2)]",
        layer_type: str = "transformer",
        layer_norm_first: bool = False,
        encoder_layers: int = 12,
        encoder_embed_dim: int = 768,
        encoder_ffn_embed_dim: int = 3072,
        encoder_attention_heads: int = 12,
        activation_fn: str = "gelu",
        dropout: float = 0.1,
        attention_dropout: float = 0.1,
        activation_dropout: float = 0.0,
        encoder_layerdrop: float = 0.0,
        dropout_input: float = 0.0,
        dropout_features: float = 0.0,  # FunASR builds this dropout and never applies it
        feature_grad_mult: float = 1.0,
        mask_prob: float = 0.65,
        mask_length: int = 10,
        mask_selection: str = "static",
        mask_other: int = 0,
        no_mask_overlap: bool = False,
        mask_min_space: int = 1,  # read only by no_mask_overlap
        require_same_masks: bool = True,
        mask_dropout: float = 0.0,
        mask_channel_length: int = 10,  # channel masking: read only when mask_channel_prob > 0
        mask_channel_prob: float = 0.0,
        mask_channel_before: bool = False,
        mask_channel_selection: str = "static",
        mask_channel_other: int = 0,
        no_mask_channel_overlap: bool = False,
        mask_channel_min_space: int = 1,
        conv_pos: int = 128,
        conv_pos_groups: int = 16,
        pos_conv_depth: int = 1,
        max_positions: int = 100000,  # FunASR stores it; nothing reads it
        average_top_k_layers: int = 8,
        layer_norm_target_layer: bool = False,
        instance_norm_target_layer: bool = False,
        instance_norm_targets: bool = False,
        layer_norm_targets: bool = False,
        batch_norm_target_layer: bool = False,
        group_norm_target_layer: bool = False,
        ema_decay: float = 0.999,
        ema_end_decay: float = 0.9999,
        ema_anneal_end_step: int = 100000,
        ema_transformer_only: bool = True,
        ema_layers_only: bool = True,
        min_target_var: float = 0.1,
        min_pred_var: float = 0.01,
        loss_beta: float = 0.0,
        loss_scale: Optional[float] = None,
        required_seq_len_multiple: int = 2,  # fp16 padding of T: changes no output (see Data2VecTransformer)
    ):
        super().__init__()
        given = {"layer_type": layer_type, "mask_selection": mask_selection, "mask_other": mask_other,
                 "no_mask_overlap": no_mask_overlap, "mask_channel_prob": mask_channel_prob}
        for key, value in given.items():
            if value != _DEFAULT_ONLY[key]:
                raise ValueError(f"{key}={value!r} is not supported (only {_DEFAULT_ONLY[key]!r}, as FunASR's configs)")
        if activation_fn not in ACTIVATIONS:
            raise ValueError(f"activation_fn {activation_fn!r}: one of {', '.join(ACTIVATIONS)}")
        if not (ema_transformer_only or ema_layers_only):
            raise ValueError("ema_transformer_only=false (a teacher over the whole encoder) is broken in FunASR "
                             "and not supported")
        if not 0 < average_top_k_layers <= encoder_layers:
            raise ValueError(f"average_top_k_layers={average_top_k_layers} must be in "
                             f"1..encoder_layers={encoder_layers}")
        conv_layers = parse_conv_layers(conv_feature_layers)
        extractor_dim = conv_layers[-1][0]

        self.feature_extractor = ConvFeatureExtractor(conv_layers, extractor_mode, input_size)
        self.mask_emb = nn.Parameter(torch.empty(encoder_embed_dim).uniform_())
        self.encoder = Data2VecTransformer(
            encoder_embed_dim, encoder_ffn_embed_dim, encoder_layers, encoder_attention_heads, dropout,
            attention_dropout, activation_dropout, activation_fn, layer_norm_first, encoder_layerdrop, conv_pos,
            conv_pos_groups, pos_conv_depth,
        )
        self.post_extract_proj = nn.Linear(extractor_dim, encoder_embed_dim)
        self.dropout_input = Dropout(dropout_input)
        self.layer_norm = nn.LayerNorm(extractor_dim)
        self.final_proj = nn.Linear(encoder_embed_dim, encoder_embed_dim)

        self.embed_dim, self.num_layers = encoder_embed_dim, encoder_layers
        self.feature_grad_mult = feature_grad_mult
        self.mask_prob, self.mask_length = mask_prob, mask_length
        self.require_same_masks, self.mask_dropout = require_same_masks, mask_dropout
        self.average_top_k_layers = average_top_k_layers
        self.target_norms = dict(
            instance_norm_target_layer=instance_norm_target_layer, batch_norm_target_layer=batch_norm_target_layer,
            group_norm_target_layer=group_norm_target_layer, layer_norm_target_layer=layer_norm_target_layer,
            layer_norm_targets=layer_norm_targets, instance_norm_targets=instance_norm_targets,
        )
        self.ema_decay, self.ema_end_decay, self.ema_anneal_end_step = ema_decay, ema_end_decay, ema_anneal_end_step
        self.ema_layers_only = ema_layers_only
        self.min_target_var, self.min_pred_var = min_target_var, min_pred_var
        self.loss_beta, self.loss_scale = loss_beta, loss_scale
        self.ema: Optional[EMATeacher] = None  # made at the first set_num_updates (FunASR's first forward)
        self.num_updates = 0

    def output_size(self) -> int:
        return self.embed_dim

    # ------------------------------------------------------------------ features
    def _features(self, xs: torch.Tensor, lengths: Optional[torch.Tensor]):
        """-> (projected features (B, T', D), padding mask (B, T') True = padding, or None)."""
        if self.feature_grad_mult > 0:
            features = self.feature_extractor(xs)
            if self.feature_grad_mult != 1.0:
                features = _GradMultiply.apply(features, self.feature_grad_mult)
        else:
            with torch.no_grad():
                features = self.feature_extractor(xs)
        features = self.layer_norm(features.transpose(1, 2))
        padding_mask = None
        if lengths is not None:
            out_lengths = self.feature_extractor.output_lengths(lengths.to(features.device))
            padding_mask = torch.arange(features.size(1), device=features.device)[None, :] >= out_lengths[:, None]
        return self.post_extract_proj(features), padding_mask

    def forward(self, xs: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """xs (B, T, input_size), lengths (B,) -> (encoder_out (B, T', D), out_lengths (B,)); frames
        past a length are not zeroed (as FunASR's features_only forward)."""
        features, padding_mask = self._features(xs, lengths)
        out = self.encoder(self.dropout_input(features), padding_mask)
        if padding_mask is None:
            return out, torch.full((out.size(0),), out.size(1), dtype=torch.long, device=out.device)
        return out, (~padding_mask).sum(1)

    # ------------------------------------------------------------------ pretraining
    def _make_teacher(self, decay: float) -> EMATeacher:
        copied = [f"pos_conv.{name}" for name, _ in self.encoder.pos_conv.named_parameters()]
        return EMATeacher(self.encoder, decay, copied if self.ema_layers_only else ())

    def set_num_updates(self, num_updates: int) -> None:
        """Before each pretraining forward (FunASR's order): the first call makes the teacher; later
        calls in training anneal the decay and take one EMA step towards the current student."""
        if self.ema is None:
            logger.info("making the EMA teacher")
            self.ema = self._make_teacher(self.ema_decay)
        elif self.training:
            if self.ema_decay != self.ema_end_decay:
                self.ema.decay = annealed_decay(self.ema_decay, self.ema_end_decay, num_updates,
                                                self.ema_anneal_end_step)
            if self.ema.decay < 1:
                self.ema.step(self.encoder)
        self.num_updates = num_updates

    def teacher_state(self) -> Optional[Dict[str, Any]]:
        """The EMA teacher as plain tensors (copies) and its decay, None before it is made. Not part
        of ``state_dict()`` (FunASR's layout, see EMATeacher): training checkpoints carry it so that
        a resumed pretraining continues with the same teacher."""
        if self.ema is None:
            return None
        return {"weights": {key: value.detach().clone() for key, value in self.ema.model.state_dict().items()},
                "decay": float(self.ema.decay)}

    def load_teacher_state(self, state: Optional[Dict[str, Any]]) -> None:
        """Inverse of :meth:`teacher_state` (None: no teacher; the next forward makes one)."""
        if state is None:
            self.ema = None
            return
        self.ema = self._make_teacher(float(state["decay"]))
        self.ema.model.load_state_dict(state["weights"])

    def draw_mask(self, padding_mask: Optional[torch.Tensor], shape, rng: np.random.RandomState) -> torch.Tensor:
        """(B, T') bool, True = masked: FunASR's span masks (masking.compute_mask_indices)."""
        mask = compute_mask_indices(shape, padding_mask, self.mask_prob, self.mask_length, rng, min_masks=1,
                                    require_same_masks=self.require_same_masks, mask_dropout=self.mask_dropout)
        return torch.from_numpy(mask)

    def pretrain_forward(self, xs: torch.Tensor, lengths: Optional[torch.Tensor] = None,
                         mask: Optional[torch.Tensor] = None,
                         rng: Optional[np.random.RandomState] = None) -> Dict[str, Any]:
        """xs (B, T, input_size), lengths (B,) or None (all T frames valid) -> {"loss": summed
        regression loss, "sample_size": masked frames, "target_var", "pred_var", "ema_decay"
        (x1000, FunASR's stat), "mask" (B, T')}.

        ``mask`` (B, T') True = masked replaces the draw; else it is drawn from ``rng``, or from a
        RandomState seeded from torch's generator (so torch.manual_seed fixes it). FunASR passes
        lengths=None when all are equal, which changes its draws: callers do the same
        (Data2VecPretrainModel does).
        """
        if self.ema is None:
            raise RuntimeError("no EMA teacher yet: call set_num_updates first (Data2VecPretrainModel.forward does)")
        features, padding_mask = self._features(xs, lengths)
        teacher_input = features.clone()
        features = self.dropout_input(features)
        if mask is None:
            rng = rng if rng is not None else np.random.RandomState(int(torch.randint(0, 2 ** 31 - 1, ())))
            mask = self.draw_mask(padding_mask, features.shape[:2], rng)
        mask = mask.to(features.device)
        student = self.encoder(torch.where(mask[..., None], self.mask_emb.to(features.dtype), features), padding_mask)

        with torch.no_grad():
            self.ema.model.eval()
            _, layer_results = self.ema.model.extract_features(
                teacher_input, padding_mask, min_layer=self.num_layers - self.average_top_k_layers)
            targets = regression_targets(layer_results, **self.target_norms)[mask]
        predictions = self.final_proj(student[mask])
        if self.loss_beta == 0:
            per_frame = F.mse_loss(predictions.float(), targets.float(), reduction="none").sum(dim=-1)
        else:
            per_frame = F.smooth_l1_loss(predictions.float(), targets.float(), reduction="none",
                                         beta=self.loss_beta).sum(dim=-1)
        scale = self.loss_scale if self.loss_scale is not None else 1 / math.sqrt(predictions.size(-1))
        with torch.no_grad():
            target_var, pred_var = batch_std(targets), batch_std(predictions.float())
        # FunASR's collapse guard: after 5000 updates, stop when targets or predictions lose variance.
        for name, value, floor in (("target", target_var, self.min_target_var), ("pred", pred_var, self.min_pred_var)):
            if self.num_updates > 5000 and value < floor:
                raise RuntimeError(f"{name} var is {float(value)} < {floor}, exiting")
        return {"loss": per_frame.sum() * scale, "sample_size": per_frame.numel(), "target_var": target_var,
                "pred_var": pred_var, "ema_decay": self.ema.decay * 1000, "mask": mask}
