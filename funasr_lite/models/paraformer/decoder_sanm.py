"""Paraformer SAN-M decoder (paraformer-large): bidirectional, fed the CIF acoustic embeddings.

Submodule names (decoders, decoders2, decoders3, embed, after_norm, output_layer) follow FunASR's
ParaformerSANMDecoder so released checkpoints load with strict=True.
"""

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from funasr_lite.models.modules.dropout import Dropout
from funasr_lite.models.modules.layer_norm import LayerNorm
from funasr_lite.models.modules.mask import sequence_mask
from funasr_lite.models.modules.sanm_attention import SANMCrossAttention, SANMDecoderMemory


@dataclass
class DecoderChunkState:
    """The streaming state of :meth:`ParaformerSANMDecoder.forward_chunk` (FunASR's
    ``cache["decoder"]``): per-layer FSMN input caches and source-attention K/V of the last
    ``look_back`` steps (chunk_size[1] frames a step)."""

    chunk_size: Tuple[int, int, int] = (0, 10, 5)
    look_back: int = 1
    fsmn: List[Optional[torch.Tensor]] = field(default_factory=list)
    kv: List[Optional[Tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=list)


class DecoderFeedForwardSANM(nn.Module):
    """w_2(LN(dropout(relu(w_1 x)))) with a bias-free w_2: (B, L, D) -> (B, L, D)."""

    def __init__(self, idim: int, hidden_units: int, dropout_rate: float, adim: Optional[int] = None):
        super().__init__()
        self.w_1 = nn.Linear(idim, hidden_units)
        self.w_2 = nn.Linear(hidden_units, idim if adim is None else adim, bias=False)  # adim: another output width
        self.dropout = Dropout(dropout_rate)
        self.norm = LayerNorm(hidden_units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.norm(self.dropout(torch.relu(self.w_1(x)))))


class SANMDecoderLayer(nn.Module):
    """t = FFN(LN1(x)); x = x + drop(FSMN(LN2(t))); x = x + drop(SrcAttn(LN3(x), memory)).

    Without an FSMN block the layer is just FFN(LN1(x)) with no residual (decoders3).
    """

    def __init__(
        self,
        size: int,
        self_attn: Optional[SANMDecoderMemory],
        src_attn: Optional[SANMCrossAttention],
        feed_forward: DecoderFeedForwardSANM,
        dropout_rate: float,
    ):
        super().__init__()
        self.self_attn = self_attn
        self.src_attn = src_attn
        self.feed_forward = feed_forward
        self.norm1 = LayerNorm(size)
        if self_attn is not None:
            self.norm2 = LayerNorm(size)
        if src_attn is not None:
            self.norm3 = LayerNorm(size)
        self.dropout = Dropout(dropout_rate)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor,
        memory_kv: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """x (B, L, D), mask (B, L), memory (B, T, Dm), memory_mask (B, T) -> (B, L, D); ``memory_kv``:
        the memory already projected by this layer's source attention (``project_memory``)."""
        transformed = self.feed_forward(self.norm1(x))
        if self.self_attn is None:
            out = transformed
        else:
            out = x + self.dropout(self.self_attn(self.norm2(transformed), mask))
        if self.src_attn is not None:
            out = out + self.dropout(self.src_attn(self.norm3(out), memory, memory_mask, memory_kv))
        return out

    def _cached_memory(self, x: torch.Tensor, fsmn_cache):
        """FFN, then the FSMN with its step cache (the first half of a streaming / scoring step)."""
        transformed = self.feed_forward(self.norm1(x))
        if self.self_attn is None:
            return transformed, fsmn_cache
        memory_out, fsmn_cache = self.self_attn.forward_chunk(self.norm2(transformed), fsmn_cache)
        return x + self.dropout(memory_out), fsmn_cache

    def forward_step(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: Optional[torch.Tensor], fsmn_cache=None):
        """One token of autoregressive scoring (FunASR's DecoderLayerSANM.forward_one_step): x (B, 1, D),
        the FSMN with its step cache, source attention over all of memory under memory_mask
        (B, 1, T) -> (x, fsmn cache)."""
        out, fsmn_cache = self._cached_memory(x, fsmn_cache)
        if self.src_attn is not None:
            out = out + self.dropout(self.src_attn(self.norm3(out), memory, memory_mask))
        return out, fsmn_cache

    def forward_chunk(self, x: torch.Tensor, memory: torch.Tensor, fsmn_cache=None, kv_cache=None,
                      chunk_size=None, look_back: int = 0):
        """One streaming step (FunASR's DecoderLayerSANM.forward_chunk): -> (x, fsmn cache, K/V cache)."""
        out, fsmn_cache = self._cached_memory(x, fsmn_cache)
        if self.src_attn is not None:
            attended, kv_cache = self.src_attn.forward_chunk(self.norm3(out), memory, kv_cache, chunk_size, look_back)
            out = out + attended
        return out, fsmn_cache, kv_cache


class ParaformerSANMDecoder(nn.Module):
    """Non-autoregressive SAN-M decoder.

    forward(encoder_out (B, T, De), encoder_out_lens (B,), acoustic_embeds (B, L, D),
    token_lengths (B,)) -> (logits (B, L, V), token_lengths). The inputs are used as they are (no
    token embedding, no position encoding); `embed` maps target ids for the glancing sampler.
    """

    def __init__(
        self,
        vocab_size: int,
        encoder_output_size: int,
        attention_heads: int = 4,
        linear_units: int = 2048,
        num_blocks: int = 6,
        dropout_rate: float = 0.1,
        positional_dropout_rate: float = 0.1,
        self_attention_dropout_rate: float = 0.0,
        src_attention_dropout_rate: float = 0.0,
        input_layer: str = "embed",
        use_output_layer: bool = True,
        wo_input_layer: bool = False,
        pos_enc_class: str = "PositionalEncoding",
        normalize_before: bool = True,
        concat_after: bool = False,
        att_layer_num: int = 6,
        kernel_size: int = 21,
        sanm_shfit: Optional[int] = 0,
        lora_list: Optional[List[str]] = None,
        lora_rank: int = 8,
        lora_alpha: int = 16,
        lora_dropout: float = 0.1,
        chunk_multiply_factor: Sequence[int] = (1,),
        tf2torch_tensor_name_prefix_torch: str = "decoder",
        tf2torch_tensor_name_prefix_tf: str = "seq2seq/decoder",
    ):
        super().__init__()
        unsupported = {
            "input_layer": (input_layer, "embed"),
            "normalize_before": (normalize_before, True),
            "concat_after": (concat_after, False),
            "lora_list": (lora_list or None, None),
        }
        for name, (value, supported) in unsupported.items():
            if value != supported:
                raise NotImplementedError(
                    f"ParaformerSANMDecoder: {name}={value!r} is not supported (only {supported!r})"
                )
        if att_layer_num < 0:
            raise ValueError(f"att_layer_num={att_layer_num} must be >= 0")
        # As FunASR: att_layer_num layers with source attention, then num_blocks - att_layer_num
        # without (none when att_layer_num >= num_blocks: SeACo's seaco_decoder has 6 with num_blocks 4).
        # FunASR: sanm_shfit None shifts the FSMN window fully into the past (no look-ahead).
        if sanm_shfit is None:
            sanm_shfit = (kernel_size - 1) // 2
        size = encoder_output_size
        self._size = size
        self.vocab_size = vocab_size

        def make_layer(with_memory: bool, with_src_attn: bool, shift: int) -> SANMDecoderLayer:
            return self.make_layer(attention_heads, linear_units, dropout_rate, self_attention_dropout_rate,
                                   src_attention_dropout_rate, kernel_size, shift, with_memory, with_src_attn)

        # Token embedding, used only by the glancing sampler (Sequential keeps the key embed.0.weight).
        self.embed = None if wo_input_layer else nn.Sequential(nn.Embedding(vocab_size, size))
        self.after_norm = LayerNorm(size)
        # None (use_output_layer false, SeACo's seaco_decoder): forward returns the hidden states.
        self.output_layer = nn.Linear(size, vocab_size) if use_output_layer else None
        self.decoders = nn.ModuleList([make_layer(True, True, sanm_shfit) for _ in range(att_layer_num)])
        num_plain = num_blocks - att_layer_num
        self.decoders2 = (
            nn.ModuleList([make_layer(True, False, 0) for _ in range(num_plain)]) if num_plain > 0 else None
        )
        self.decoders3 = nn.ModuleList([make_layer(False, False, 0)])

    def make_layer(self, attention_heads: int, linear_units: int, dropout_rate: float,
                   self_attention_dropout_rate: float, src_attention_dropout_rate: float, kernel_size: int,
                   shift: int, with_memory: bool = True, with_src_attn: bool = True) -> SANMDecoderLayer:
        """One decoder layer of this decoder's width."""
        size = self._size
        return SANMDecoderLayer(
            size,
            SANMDecoderMemory(size, self_attention_dropout_rate, kernel_size, shift) if with_memory else None,
            SANMCrossAttention(attention_heads, size, src_attention_dropout_rate) if with_src_attn else None,
            DecoderFeedForwardSANM(size, linear_units, dropout_rate),
            dropout_rate,
        )

    def forward_hidden(
        self,
        encoder_out: torch.Tensor,
        encoder_out_lens: torch.Tensor,
        acoustic_embeds: torch.Tensor,
        token_lengths: torch.Tensor,
        chunk_mask: Optional[torch.Tensor] = None,
        memory_kv: Optional[Sequence[torch.Tensor]] = None,
    ) -> torch.Tensor:
        """Decoder states after `after_norm`: (B, L, D). ``chunk_mask`` (B, L, T) 0/1: the
        encoder frames each token may attend to (a streaming model's SCAMA mask, training).
        ``memory_kv``: per layer of ``decoders`` (those with source attention), the memory through
        that layer's ``src_attn.project_memory`` (B, T, 2D), when the caller projected it once."""
        token_mask = sequence_mask(token_lengths, acoustic_embeds.size(1))
        memory_mask = sequence_mask(encoder_out_lens, encoder_out.size(1))
        if chunk_mask is not None:
            memory_mask = memory_mask[:, None, :] & (chunk_mask > 0)
            if memory_mask.size(1) != acoustic_embeds.size(1):  # FunASR repeats the last-but-one row
                memory_mask = torch.cat([memory_mask, memory_mask[:, -2:-1, :]], dim=1)
        x = acoustic_embeds
        for index, layer in enumerate(self.decoders):
            x = layer(x, token_mask, encoder_out, memory_mask, None if memory_kv is None else memory_kv[index])
        for layer in self.decoders2 or ():
            x = layer(x, token_mask, encoder_out, memory_mask)
        for layer in self.decoders3:
            x = layer(x, token_mask, encoder_out, memory_mask)
        return self.after_norm(x)

    def forward_chunk(self, memory: torch.Tensor, acoustic_embeds: torch.Tensor,
                      state: DecoderChunkState) -> torch.Tensor:
        """One streaming step (FunASR's ParaformerSANMDecoder.forward_chunk): memory (1, W, De) the
        encoder window, acoustic_embeds (1, L, D) the tokens CIF fired in it -> logits (1, L, V)
        (hidden states without an output layer). ``state`` keeps the FSMN inputs and K/V.
        As FunASR, ``decoders2`` runs only when there are two or more of them."""
        plain = list(self.decoders2 or ())
        if not state.fsmn:
            state.fsmn = [None] * (len(self.decoders) + len(plain))
        if not state.kv:
            state.kv = [None] * len(self.decoders)
        x = acoustic_embeds
        for index, layer in enumerate(self.decoders):
            x, state.fsmn[index], kv = layer.forward_chunk(x, memory, state.fsmn[index], state.kv[index],
                                                           state.chunk_size, state.look_back)
            if state.look_back > 0 or state.look_back == -1:
                state.kv[index] = kv
        if len(plain) > 1:
            for offset, layer in enumerate(plain):
                index = len(self.decoders) + offset
                x, state.fsmn[index], _ = layer.forward_chunk(x, memory, state.fsmn[index])
        for layer in self.decoders3:
            x, _, _ = layer.forward_chunk(x, memory)
        x = self.after_norm(x)
        return x if self.output_layer is None else self.output_layer(x)

    def forward(
        self,
        encoder_out: torch.Tensor,
        encoder_out_lens: torch.Tensor,
        acoustic_embeds: torch.Tensor,
        token_lengths: torch.Tensor,
        chunk_mask: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """-> (logits (B, L, V), token_lengths (B,)); (hidden (B, L, D), ...) without an output layer."""
        hidden = self.forward_hidden(encoder_out, encoder_out_lens, acoustic_embeds, token_lengths, chunk_mask)
        if self.output_layer is None:
            return hidden, token_lengths
        return self.output_layer(hidden), token_lengths

    def source_attention(
        self,
        encoder_out: torch.Tensor,
        encoder_out_lens: torch.Tensor,
        acoustic_embeds: torch.Tensor,
        token_lengths: torch.Tensor,
        layer: int,
        memory_kv: Optional[Sequence[torch.Tensor]] = None,
    ) -> torch.Tensor:
        """The attention probabilities of layer ``layer``'s source attention, (B, H, L, T): layers
        0 .. layer-1 run in full, then that layer up to its source attention (FunASR's
        ``forward_asf6`` for layer 5, which SeACo's hotword filter reads); ``memory_kv`` as in
        :meth:`forward_hidden`."""
        token_mask = sequence_mask(token_lengths, acoustic_embeds.size(1))
        memory_mask = sequence_mask(encoder_out_lens, encoder_out.size(1))
        projected = list(memory_kv) if memory_kv is not None else [None] * (layer + 1)
        x = acoustic_embeds
        for index, block in enumerate(self.decoders[:layer]):
            x = block(x, token_mask, encoder_out, memory_mask, projected[index])
        block = self.decoders[layer]
        transformed = block.feed_forward(block.norm1(x))
        x = x + block.dropout(block.self_attn(block.norm2(transformed), token_mask))
        return block.src_attn.attention_probs(block.norm3(x), encoder_out, memory_mask, projected[layer])
