"""SAN-M encoder (Paraformer's encoder): self-attention + FSMN memory, pre-norm, no subsampling.

Inputs are LFR+CMVN features; the first layer (`encoders0`) maps input_size -> output_size.
Submodule names follow FunASR's SANMEncoder so released checkpoints load with strict=True.
"""

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from funasr_lite.models.modules.dropout import Dropout
from funasr_lite.models.modules.embedding import SinusoidalPositionEncoder
from funasr_lite.models.modules.feed_forward import PositionwiseFeedForward
from funasr_lite.models.modules.layer_norm import LayerNorm
from funasr_lite.models.modules.mask import sequence_mask
from funasr_lite.models.modules.scama import ChunkConfig, chunk_plan, split_chunk
from funasr_lite.models.modules.sanm_attention import SANMSelfAttention, chunk_attention


@dataclass
class EncoderChunkState:
    """The streaming state of :meth:`SANMEncoder.forward_chunk` (FunASR's ``cache["encoder"]``):
    chunk_size = (left, step, look-ahead) LFR frames, look_back = steps of K/V kept (-1: all)."""

    chunk_size: Tuple[int, int, int] = (0, 10, 5)
    look_back: int = 4
    start: int = 0  # frames of the stream so far (position encoding)
    window_tail: Optional[torch.Tensor] = None
    kv: List[Optional[Tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=list)


class SANMEncoderLayer(nn.Module):
    """Pre-norm layer: x = x + drop(SANM(LN1(x))); x = x + drop(FFN(LN2(x))).

    The attention residual exists only when in_size == size (encoders0 changes the width).
    """

    def __init__(self, in_size: int, size: int, self_attn: nn.Module, feed_forward: nn.Module, dropout_rate: float):
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.norm1 = LayerNorm(in_size)
        self.norm2 = LayerNorm(size)
        self.dropout = Dropout(dropout_rate)
        self.has_attention_residual = in_size == size

    def forward_chunk(self, x: torch.Tensor, kv_cache, chunk_size, look_back: int):
        """One streaming window (FunASR's EncoderLayerSANM.forward_chunk): -> (x, new K/V cache)."""
        attended, kv_cache = chunk_attention(self.self_attn, self.norm1(x), kv_cache, chunk_size, look_back)
        x = x + attended if self.has_attention_residual else attended
        return x + self.feed_forward(self.norm2(x)), kv_cache

    def forward(self, x: torch.Tensor, mask: torch.Tensor, fsmn_mask: Optional[torch.Tensor] = None,
                att_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, T, in_size), mask (B, T) bool -> (B, T, size); SCAMA masks: SANMSelfAttention."""
        attended = self.dropout(self.self_attn(self.norm1(x), mask, fsmn_mask, att_mask))
        x = x + attended if self.has_attention_residual else attended
        return x + self.dropout(self.feed_forward(self.norm2(x)))


class SANMEncoder(nn.Module):
    """SAN-M encoder: (B, T, input_size) features -> (B, T, output_size), lengths unchanged.

    Keyword names (including FunASR's spelling `sanm_shfit`) match FunASR's config.yaml. Options
    that released Paraformer configs never set to a non-default value are accepted for config
    compatibility but only their default is implemented.
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
        input_layer: Optional[str] = "pe",
        pos_enc_class: str = "SinusoidalPositionEncoder",
        normalize_before: bool = True,
        concat_after: bool = False,
        positionwise_layer_type: str = "linear",
        positionwise_conv_kernel_size: int = 1,
        padding_idx: int = -1,
        interctc_layer_idx: Optional[List[int]] = None,
        interctc_use_conditioning: bool = False,
        kernel_size: int = 11,
        sanm_shfit: int = 0,
        lora_list: Optional[List[str]] = None,
        lora_rank: int = 8,
        lora_alpha: int = 16,
        lora_dropout: float = 0.1,
        selfattention_layer_type: str = "sanm",
        tf2torch_tensor_name_prefix_torch: str = "encoder",
        tf2torch_tensor_name_prefix_tf: str = "seq2seq/encoder",
    ):
        super().__init__()
        unsupported = {
            "input_layer": (input_layer, "pe"),
            "pos_enc_class": (pos_enc_class, "SinusoidalPositionEncoder"),
            "normalize_before": (normalize_before, True),
            "concat_after": (concat_after, False),
            "positionwise_layer_type": (positionwise_layer_type, "linear"),
            "interctc_layer_idx": (interctc_layer_idx or None, None),
            "interctc_use_conditioning": (interctc_use_conditioning, False),
            "lora_list": (lora_list or None, None),
            "selfattention_layer_type": (selfattention_layer_type, "sanm"),
        }
        for name, (value, supported) in unsupported.items():
            if value != supported:
                raise NotImplementedError(f"SANMEncoder: {name}={value!r} is not supported (only {supported!r})")
        # positional_dropout_rate is accepted but unused: FunASR's "pe" layer has no dropout either.

        self._output_size = output_size
        self.embed = SinusoidalPositionEncoder()

        def make_layer(in_size: int) -> SANMEncoderLayer:
            attention = SANMSelfAttention(
                attention_heads, in_size, output_size, attention_dropout_rate, kernel_size, sanm_shfit
            )
            feed_forward = PositionwiseFeedForward(output_size, linear_units, dropout_rate)
            return SANMEncoderLayer(in_size, output_size, attention, feed_forward, dropout_rate)

        self.encoders0 = nn.ModuleList([make_layer(input_size)])
        self.encoders = nn.ModuleList([make_layer(output_size) for _ in range(num_blocks - 1)])
        self.after_norm = LayerNorm(output_size)

    def output_size(self) -> int:
        return self._output_size

    def forward_chunk(self, xs: Optional[torch.Tensor], state: "EncoderChunkState") -> torch.Tensor:
        """One streaming step (FunASR's SANMEncoderChunkOpt.forward_chunk, look-ahead included):
        xs (1, T, input_size) new frames -> (1, W, output_size) for the window = the previous
        step's last chunk_size[0] + chunk_size[2] frames (zeros at the start) + xs. ``state``
        is updated: stream position, window tail, per-layer K/V of the last ``look_back`` steps.

        xs None is FunASR's *tail chunk* (a final step of under one LFR frame of audio): the
        window is the kept tail alone, scaled by sqrt(output_size) a second time, as FunASR's
        in-place ``xs_pad *= ...`` on its cached frames does (its position is counted, not added)."""
        context = state.chunk_size[0] + state.chunk_size[2]
        if xs is None:
            window = state.window_tail
            if window is None:  # a stream that ends before its first step: FunASR's zero frames
                window = torch.zeros(1, context, self.encoders0[0].self_attn.linear_q_k_v.in_features,
                                     device=self.after_norm.weight.device)
            window = window * self._output_size**0.5
            state.start += window.size(1)
        else:
            xs = self.embed(xs * self._output_size**0.5, start=state.start)
            state.start += xs.size(1)
            tail = state.window_tail
            if tail is None:
                tail = xs.new_zeros(xs.size(0), context, xs.size(2))
            window = torch.cat([tail, xs], dim=1)
            state.window_tail = window[:, window.size(1) - context:]
        layers = list(self.encoders0) + list(self.encoders)
        if not state.kv:
            state.kv = [None] * len(layers)
        for index, layer in enumerate(layers):
            window, kv = layer.forward_chunk(window, state.kv[index], state.chunk_size, state.look_back)
            if state.look_back > 0 or state.look_back == -1:
                state.kv[index] = kv
        return self.after_norm(window)

    def forward(self, xs: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """xs (B, T, input_size), lengths (B,) -> (encoded (B, T, output_size), lengths (B,)).

        Frames past each length hold unspecified values; use the returned lengths.
        """
        mask = sequence_mask(lengths, xs.size(1))
        # Scale features to the magnitude the position encoding was trained against.
        xs = self.embed(xs * self._output_size**0.5)
        for layer in self.encoders0:
            xs = layer(xs, mask)
        for layer in self.encoders:
            xs = layer(xs, mask)
        return self.after_norm(xs), lengths


class SANMEncoderChunkOpt(SANMEncoder):
    """FunASR's streaming SAN-M encoder (``SANMEncoderChunkOpt``, ParaformerStreaming's): the same
    layers and weights as :class:`SANMEncoder`, plus the SCAMA chunk configurations its training
    samples from (``chunk_size``/``stride``/``pad_left`` and the look-back factors, one entry per
    configuration) and the streaming position encoding ``pe_online`` (the same sines, continued
    across steps by :meth:`forward_chunk`). Training runs whole utterances through the SCAMA
    chunking (:meth:`forward_scama`), decoding step by step (:meth:`forward_chunk`)."""

    def __init__(self, input_size: int, chunk_size: Sequence[int] = (16,), stride: Sequence[int] = (10,),
                 pad_left: Sequence[int] = (0,), encoder_att_look_back_factor: Sequence[int] = (1,),
                 decoder_att_look_back_factor: Sequence[int] = (1,), input_layer: Optional[str] = "pe_online",
                 **kwargs):
        if input_layer not in ("pe", "pe_online"):
            raise NotImplementedError(f"SANMEncoderChunkOpt: input_layer={input_layer!r} is not supported "
                                      "(only 'pe_online' or 'pe')")
        super().__init__(input_size, input_layer="pe", **kwargs)
        configs = [list(chunk_size), list(stride), list(pad_left), list(encoder_att_look_back_factor),
                   list(decoder_att_look_back_factor)]
        if len({len(c) for c in configs}) != 1:
            raise ValueError("SANMEncoderChunkOpt: chunk_size, stride, pad_left and the look-back factors "
                             f"need one entry per configuration, got lengths {[len(c) for c in configs]}")
        self.chunk_configs = list(zip(*configs))
        self.shift_fsmn = (int(kwargs.get("kernel_size", 11)) - 1) // 2  # FunASR's shfit_fsmn

    def choose_config(self, training: bool) -> int:
        """The chunk configuration of a step: drawn with ``torch.randint`` from the global torch
        generator in training when there are several (FunASR's ``random_choice``, same draw), 0 else."""
        if training and len(self.chunk_configs) > 1:
            return int(torch.randint(0, len(self.chunk_configs), ()).item())
        return 0

    def chunk_config(self, index: int) -> ChunkConfig:
        size, stride, pad_left, encoder_look_back, decoder_look_back = self.chunk_configs[index]
        return ChunkConfig(size, stride, pad_left, encoder_look_back, decoder_look_back, self.shift_fsmn)

    def forward_scama(self, xs: torch.Tensor, lengths: torch.Tensor, index: int = 0):
        """Whole utterances through configuration ``index``'s SCAMA chunking (FunASR's
        SANMEncoderChunkOpt.forward, training and its full-utterance loss): -> (encoder output in
        the chunk domain (B, Tc, D), chunk-domain lengths (B,), the ChunkPlan)."""
        xs = self.embed(xs * self._output_size**0.5)
        plan = chunk_plan(lengths, self.chunk_config(index))
        xs, chunk_lengths = split_chunk(xs, lengths, plan)
        mask = sequence_mask(chunk_lengths, xs.size(1))
        fsmn_mask = plan.tensor("mask_shift", xs, xs.size(0))[..., 0] > 0
        att_mask = plan.tensor("mask_att_encoder", xs, xs.size(0)) > 0
        for layer in list(self.encoders0) + list(self.encoders):
            xs = layer(xs, mask, fsmn_mask, att_mask)
        return self.after_norm(xs), chunk_lengths, plan

    def forward(self, xs: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError(
            "SANMEncoderChunkOpt runs in chunks: forward_scama (training) or forward_chunk (streaming: "
            "SpeechRecognizer.stream(), infer --streaming)")
