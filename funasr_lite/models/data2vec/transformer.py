"""The data2vec Transformer (FunASR's ``wav2vec2.TransformerEncoder``): a convolutional relative
position embedding, then post-LN (or pre-LN) Transformer layers; every layer also returns its
feed-forward output before the residual, which the EMA teacher averages into targets.

Module names follow FunASR's (``pos_conv``, ``layers.N.self_attn.{q,k,v,out}_proj``, ``fc1``,
``fc2``, ``self_attn_layer_norm``, ``final_layer_norm``, ``layer_norm``) so its checkpoints load
with strict=True. Tensors are (B, T, D) here (FunASR's layers run (T, B, D)); padding masks are
True = padding, FunASR's convention, kept because they travel into FunASR's mask sampling.
"""

import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from funasr_lite.models.modules.dropout import Dropout, dropout


def _gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x.float()).type_as(x)  # FunASR computes GELU in fp32


def _gelu_accurate(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


ACTIVATIONS = {"gelu": _gelu, "gelu_accurate": _gelu_accurate, "relu": F.relu, "tanh": torch.tanh,
               "linear": lambda x: x}


class TransposeLast(nn.Module):
    """(..., A, B) -> (..., B, A); a module so that FunASR's Sequential indices stay where they are."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(-2, -1)


class SamePad(nn.Module):
    """Drops the one extra output frame an even kernel with padding k // 2 makes."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.remove = 1 if kernel_size % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : -self.remove] if self.remove else x


class WeightNormConv1d(nn.Module):
    """Grouped Conv1d with weight normalisation over dim 2 (``nn.utils.weight_norm(conv, dim=2)``):
    weight = weight_v * weight_g / ||weight_v||, the norm taken per kernel tap. Parameters are
    named as that hook names them (weight_g (1, 1, k), weight_v, bias)."""

    def __init__(self, channels: int, kernel_size: int, groups: int):
        super().__init__()
        self.groups, self.padding = groups, kernel_size // 2
        weight = torch.empty(channels, channels // groups, kernel_size)
        nn.init.normal_(weight, mean=0, std=math.sqrt(4 / (kernel_size * channels)))  # FunASR's init
        self.weight_g = nn.Parameter(weight.norm(dim=(0, 1), keepdim=True))
        self.weight_v = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = torch._weight_norm(self.weight_v, self.weight_g, 2)  # the kernel nn.utils.weight_norm runs
        return F.conv1d(x, weight, self.bias, padding=self.padding, groups=self.groups)


def positional_conv(channels: int, conv_pos: int, groups: int, depth: int) -> nn.Sequential:
    """(B, D, T) -> (B, D, T). depth 1: one weight-normed conv of width conv_pos + GELU; depth > 1:
    ``depth`` blocks of conv (width max(3, conv_pos // depth)) + LayerNorm without affine + GELU."""
    if depth == 1:
        return nn.Sequential(WeightNormConv1d(channels, conv_pos, groups), SamePad(conv_pos), nn.GELU())
    k = max(3, conv_pos // depth)
    return nn.Sequential(*[
        nn.Sequential(nn.Conv1d(channels, channels, k, padding=k // 2, groups=groups), SamePad(k), TransposeLast(),
                      nn.LayerNorm(channels, elementwise_affine=False), TransposeLast(), nn.GELU())
        for _ in range(depth)
    ])


class Data2VecAttention(nn.Module):
    """Multi-head self-attention with separate q/k/v projections (fairseq's MultiheadAttention)."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"encoder_embed_dim {embed_dim} is not a multiple of encoder_attention_heads {num_heads}")
        self.num_heads, self.dropout = num_heads, dropout
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """x (B, T, D), padding_mask (B, T) True = padding (keys not attended) -> (B, T, D)."""
        batch, frames, dim = x.shape

        def heads(t):
            return t.view(batch, frames, self.num_heads, dim // self.num_heads).transpose(1, 2)

        keep = None if padding_mask is None else ~padding_mask[:, None, None, :]
        attended = F.scaled_dot_product_attention(
            heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x)), attn_mask=keep,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out_proj(attended.transpose(1, 2).reshape(batch, frames, dim))


class Data2VecTransformerLayer(nn.Module):
    """Post-LN (default) or pre-LN (layer_norm_first) Transformer layer. forward returns (x, the
    feed-forward output before its dropout and residual): the per-layer teacher target."""

    def __init__(self, embed_dim: int, ffn_dim: int, num_heads: int, dropout: float, attention_dropout: float,
                 activation_dropout: float, activation_fn: str, layer_norm_first: bool):
        super().__init__()
        self.activation = ACTIVATIONS[activation_fn]
        self.self_attn = Data2VecAttention(embed_dim, num_heads, attention_dropout)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(activation_dropout)
        self.dropout3 = Dropout(dropout)
        self.layer_norm_first = layer_norm_first
        self.self_attn_layer_norm = nn.LayerNorm(embed_dim)
        self.fc1 = nn.Linear(embed_dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, embed_dim)
        self.final_layer_norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.layer_norm_first:
            x = x + self.dropout1(self.self_attn(self.self_attn_layer_norm(x), padding_mask))
            ffn_out = self.fc2(self.dropout2(self.activation(self.fc1(self.final_layer_norm(x)))))
            return x + self.dropout3(ffn_out), ffn_out
        x = self.self_attn_layer_norm(x + self.dropout1(self.self_attn(x, padding_mask)))
        ffn_out = self.fc2(self.dropout2(self.activation(self.fc1(x))))
        return self.final_layer_norm(x + self.dropout3(ffn_out)), ffn_out


def init_bert_params(module: nn.Module) -> None:
    """FunASR's init of the Transformer: Linear weights N(0, 0.02), biases 0."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class Data2VecTransformer(nn.Module):
    """(B, T, D) projected features -> (B, T, D), with per-layer feed-forward outputs.

    FunASR pads T to a multiple of ``required_seq_len_multiple`` (an fp16 kernel-speed measure):
    the pad frames are masked keys and are cut off again, so they change no output and are not
    added here.
    """

    def __init__(self, embed_dim: int, ffn_dim: int, num_layers: int, num_heads: int, dropout: float,
                 attention_dropout: float, activation_dropout: float, activation_fn: str, layer_norm_first: bool,
                 layerdrop: float, conv_pos: int, conv_pos_groups: int, pos_conv_depth: int):
        super().__init__()
        self.dropout, self.layerdrop, self.layer_norm_first = dropout, layerdrop, layer_norm_first
        self.pos_conv = positional_conv(embed_dim, conv_pos, conv_pos_groups, pos_conv_depth)
        self.layers = nn.ModuleList([
            Data2VecTransformerLayer(embed_dim, ffn_dim, num_heads, dropout, attention_dropout, activation_dropout,
                                     activation_fn, layer_norm_first)
            for _ in range(num_layers)
        ])
        self.layer_norm = nn.LayerNorm(embed_dim)
        self.apply(init_bert_params)

    def extract_features(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor] = None,
                         min_layer: int = 0) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """-> (x (B, T, D) before the pre-LN model's final norm, the (B, T, D) feed-forward outputs of
        layers min_layer...). In training, each layer is skipped with probability ``layerdrop``."""
        if padding_mask is not None:
            x = x.masked_fill(padding_mask[..., None], 0.0)
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        x = dropout(x, p=self.dropout, training=self.training)
        layer_results = []
        for index, layer in enumerate(self.layers):
            if self.training and self.layerdrop > 0 and float(torch.rand(())) <= self.layerdrop:
                continue
            x, ffn_out = layer(x, padding_mask)
            if index >= min_layer:
                layer_results.append(ffn_out)
        return x, layer_results

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x, _ = self.extract_features(x, padding_mask)
        return self.layer_norm(x) if self.layer_norm_first else x
