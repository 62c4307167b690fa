"""Conformer encoder (arXiv 2005.08100), the encoder of FunASR's from-scratch AISHELL-1
Paraformer recipe. Constructor keywords and parameter names are FunASR's, so a FunASR
`encoder_conf` builds it and FunASR checkpoints load with strict=True.

Note FunASR's default `rel_pos_type: legacy`: a config that asks for `rel_pos` /
`rel_selfattn` without `rel_pos_type: latest` (the AISHELL recipe does) gets the legacy
relative encoding and attention.
"""

from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from funasr_lite.models.modules.attention import (
    LegacyRelPositionMultiHeadedAttention,
    MultiHeadedAttention,
    RelPositionMultiHeadedAttention,
)
from funasr_lite.models.modules.convolution import ConvolutionModule
from funasr_lite.models.modules.dropout import Dropout
from funasr_lite.models.modules.feed_forward import PositionwiseFeedForward
from funasr_lite.models.modules.mask import sequence_mask
from funasr_lite.models.modules.rel_position import POSITION_ENCODINGS
from funasr_lite.models.modules.subsampling import SUBSAMPLINGS

# FunASR's LayerNorm subclass uses this eps everywhere inside the blocks.
LAYER_NORM_EPS = 1e-12

ACTIVATIONS = {
    "hardtanh": nn.Hardtanh,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "selu": nn.SELU,
    "swish": nn.SiLU,  # swish with beta = 1 is x * sigmoid(x)
}


class ConformerEncoderLayer(nn.Module):
    """One block: [½FFN] -> MHSA -> [Conv] -> FFN (×½ if macaron) -> [LayerNorm]. (B, T, D)."""

    def __init__(
        self,
        size: int,
        self_attn: nn.Module,
        feed_forward: nn.Module,
        feed_forward_macaron: Optional[nn.Module],
        conv_module: Optional[ConvolutionModule],
        dropout_rate: float,
        normalize_before: bool = True,
        concat_after: bool = False,
        stochastic_depth_rate: float = 0.0,
    ):
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.feed_forward_macaron = feed_forward_macaron
        self.conv_module = conv_module
        self.norm_ff = nn.LayerNorm(size, eps=LAYER_NORM_EPS)
        self.norm_mha = nn.LayerNorm(size, eps=LAYER_NORM_EPS)
        if feed_forward_macaron is not None:
            self.norm_ff_macaron = nn.LayerNorm(size, eps=LAYER_NORM_EPS)
        # Macaron splits one FFN into two half-step FFNs around the attention.
        self.ff_scale = 0.5 if feed_forward_macaron is not None else 1.0
        if conv_module is not None:
            self.norm_conv = nn.LayerNorm(size, eps=LAYER_NORM_EPS)
            self.norm_final = nn.LayerNorm(size, eps=LAYER_NORM_EPS)
        self.dropout = Dropout(dropout_rate)
        self.normalize_before = normalize_before
        self.concat_after = concat_after
        if concat_after:
            self.concat_linear = nn.Linear(2 * size, size)
        self.stochastic_depth_rate = stochastic_depth_rate

    def _residual(self, x, norm, module_fn, scale):
        """x + scale * dropout(module_fn(norm(x))) with pre- or post-norm placement."""
        y = module_fn(norm(x) if self.normalize_before else x)
        x = x + scale * self.dropout(y)
        return x if self.normalize_before else norm(x)

    def forward(
        self,
        x: torch.Tensor,
        pos_emb: Optional[torch.Tensor],
        mask: torch.Tensor,
        conv_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """x (B, T, D); pos_emb (1, P, D) or None; mask (B, T) True = valid keys; conv_mask
        (B, T) or None: when given, padded frames are zeroed before the depthwise convolution.
        """
        depth_scale = 1.0
        if self.training and self.stochastic_depth_rate > 0:
            if torch.rand(1).item() < self.stochastic_depth_rate:
                return x
            depth_scale = 1.0 / (1.0 - self.stochastic_depth_rate)

        if self.feed_forward_macaron is not None:
            x = self._residual(
                x, self.norm_ff_macaron, self.feed_forward_macaron, depth_scale * self.ff_scale
            )

        residual = x
        y = self.norm_mha(x) if self.normalize_before else x
        if pos_emb is None:
            attended = self.self_attn(y, y, y, mask)
        else:
            attended = self.self_attn(y, y, y, pos_emb, mask)
        if self.concat_after:
            # The concatenated input is the (normed) attention input, as in FunASR.
            x = residual + depth_scale * self.concat_linear(torch.cat([y, attended], dim=-1))
        else:
            x = residual + depth_scale * self.dropout(attended)
        if not self.normalize_before:
            x = self.norm_mha(x)

        if self.conv_module is not None:
            x = self._residual(
                x, self.norm_conv, lambda z: self.conv_module(z, conv_mask), depth_scale
            )

        x = self._residual(x, self.norm_ff, self.feed_forward, depth_scale * self.ff_scale)

        if self.conv_module is not None:
            x = self.norm_final(x)
        return x


class ConformerEncoder(nn.Module):
    """Subsampling + position encoding, `num_blocks` Conformer blocks, final LayerNorm.

    forward(xs (B, T, input_size), lengths (B,)) -> (enc (B, T', output_size), enc_lengths (B,)).

    `padding_invariant` (ours, default False = FunASR's numbers): when True, padded frames
    are zeroed before every depthwise convolution and output lengths follow the convolution
    arithmetic of each utterance's own length, so an utterance encodes the same alone as in
    a padded batch — provided the position encoding is abs_pos or rel_pos with
    rel_pos_type latest (the legacy relative encoding depends on the padded length T').
    """

    def __init__(
        self,
        input_size: int,
        output_size: int = 256,
        attention_heads: int = 4,
        linear_units: int = 2048,
        num_blocks: int = 6,
        dropout_rate: float = 0.1,
        positional_dropout_rate: float = 0.1,
        attention_dropout_rate: float = 0.0,
        input_layer: Optional[str] = "conv2d",
        normalize_before: bool = True,
        concat_after: bool = False,
        positionwise_layer_type: str = "linear",
        positionwise_conv_kernel_size: int = 3,
        macaron_style: bool = False,
        rel_pos_type: str = "legacy",
        pos_enc_layer_type: str = "rel_pos",
        selfattention_layer_type: str = "rel_selfattn",
        activation_type: str = "swish",
        use_cnn_module: bool = True,
        zero_triu: bool = False,
        cnn_module_kernel: int = 31,
        padding_idx: int = -1,
        interctc_layer_idx: Sequence[int] = (),
        interctc_use_conditioning: bool = False,
        stochastic_depth_rate: Union[float, List[float]] = 0.0,
        padding_invariant: bool = False,
    ):
        super().__init__()
        if positionwise_layer_type != "linear":
            raise NotImplementedError(f"positionwise_layer_type={positionwise_layer_type!r}: only 'linear'")
        if len(interctc_layer_idx) > 0 or interctc_use_conditioning:
            raise NotImplementedError("intermediate CTC is not supported")
        pos_enc_layer_type, selfattention_layer_type = self._resolve_relative_types(
            rel_pos_type, pos_enc_layer_type, selfattention_layer_type
        )
        self._output_size = output_size
        self.normalize_before = normalize_before
        self.padding_invariant = padding_invariant

        pos_enc = POSITION_ENCODINGS[pos_enc_layer_type](output_size, positional_dropout_rate)
        if input_layer in SUBSAMPLINGS:
            self.embed = SUBSAMPLINGS[input_layer](input_size, output_size, dropout_rate, pos_enc)
        elif input_layer == "linear":
            self.embed = nn.Sequential(
                nn.Linear(input_size, output_size),
                nn.LayerNorm(output_size),  # torch's default eps here, as in FunASR
                Dropout(dropout_rate),
                pos_enc,
            )
        elif input_layer is None:
            self.embed = nn.Sequential(pos_enc)
        else:
            raise ValueError(f"unknown input_layer: {input_layer!r}")

        if isinstance(stochastic_depth_rate, (int, float)):
            stochastic_depth_rate = [float(stochastic_depth_rate)] * num_blocks
        if len(stochastic_depth_rate) != num_blocks:
            raise ValueError("stochastic_depth_rate needs one value per block")

        def make_attention():
            if selfattention_layer_type == "selfattn":
                return MultiHeadedAttention(attention_heads, output_size, attention_dropout_rate)
            if selfattention_layer_type == "rel_selfattn":
                return RelPositionMultiHeadedAttention(
                    attention_heads, output_size, attention_dropout_rate, zero_triu
                )
            # FunASR never passes zero_triu to the legacy attention.
            return LegacyRelPositionMultiHeadedAttention(attention_heads, output_size, attention_dropout_rate)

        def make_feed_forward():
            return PositionwiseFeedForward(
                output_size, linear_units, dropout_rate, ACTIVATIONS[activation_type]()
            )

        self.encoders = nn.ModuleList(
            ConformerEncoderLayer(
                output_size,
                make_attention(),
                make_feed_forward(),
                make_feed_forward() if macaron_style else None,
                ConvolutionModule(output_size, cnn_module_kernel, ACTIVATIONS[activation_type]())
                if use_cnn_module
                else None,
                dropout_rate,
                normalize_before,
                concat_after,
                stochastic_depth_rate[block],
            )
            for block in range(num_blocks)
        )
        if normalize_before:
            self.after_norm = nn.LayerNorm(output_size, eps=LAYER_NORM_EPS)

    @staticmethod
    def _resolve_relative_types(rel_pos_type, pos_enc_layer_type, selfattention_layer_type):
        """Apply FunASR's rel_pos_type switch and check the encoding/attention pairing."""
        if rel_pos_type == "legacy":
            if pos_enc_layer_type == "rel_pos":
                pos_enc_layer_type = "legacy_rel_pos"
            if selfattention_layer_type == "rel_selfattn":
                selfattention_layer_type = "legacy_rel_selfattn"
        elif rel_pos_type != "latest":
            raise ValueError(f"unknown rel_pos_type: {rel_pos_type!r}")
        if pos_enc_layer_type not in POSITION_ENCODINGS:
            raise ValueError(f"unknown pos_enc_layer_type: {pos_enc_layer_type!r}")
        expected_attention = {"rel_pos": "rel_selfattn", "legacy_rel_pos": "legacy_rel_selfattn"}
        needed = expected_attention.get(pos_enc_layer_type, "selfattn")
        if selfattention_layer_type != needed:
            raise ValueError(
                f"pos_enc_layer_type {pos_enc_layer_type!r} needs selfattention_layer_type "
                f"{needed!r}, got {selfattention_layer_type!r}"
            )
        return pos_enc_layer_type, selfattention_layer_type

    def output_size(self) -> int:
        return self._output_size

    def forward(self, xs: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """xs (B, T, input_size), lengths (B,) -> (enc (B, T', D), enc_lengths (B,))."""
        mask = sequence_mask(lengths, xs.size(1))
        if isinstance(self.embed, nn.Sequential):
            embedded = self.embed(xs)
        else:
            embedded, mask = self.embed(xs, mask)
            if self.padding_invariant:
                mask = sequence_mask(self.embed.output_lengths(lengths), mask.size(1))
        x, pos_emb = embedded if isinstance(embedded, tuple) else (embedded, None)

        conv_mask = mask if self.padding_invariant else None
        for layer in self.encoders:
            x = layer(x, pos_emb, mask, conv_mask)
        if self.normalize_before:
            x = self.after_norm(x)
        return x, mask.sum(dim=1)
