"""A streaming Paraformer (ParaformerStreaming) as FunASR's two online ONNX graphs, for export.

FunASR's online export (``paraformer_streaming/export_meta.py``) cuts a step into two graphs that
a runtime (funasr-onnx's online Paraformer, sherpa-onnx's OnlineRecognizer) drives, doing the
framing, the scaling by sqrt(d), the position encoding and the CIF loop itself:

* :class:`StreamingEncoderGraph` (``model.onnx``): ``speech`` (B, T, D) — LFR+CMVN frames already
  scaled by sqrt(output_size) and position-encoded by the runtime — and ``speech_lengths`` (B,)
  int32 -> ``enc`` (B, T, d), ``enc_len`` (B,), ``alphas`` (B, T) the CIF weights (0 past each
  length). A window attends only to itself (no K/V of earlier steps).
* :class:`StreamingDecoderGraph` (``decoder.onnx``): ``enc``, ``enc_len``, ``acoustic_embeds``
  (B, N, d) the tokens CIF fired, ``acoustic_embeds_len`` (B,), and one FSMN cache per decoder
  layer with a memory block, ``in_cache_i`` (B, d, kernel-1) -> ``logits`` (B, N, V) (before
  softmax), ``sample_ids`` (B, N) their argmax, ``out_cache_i`` (B, d, kernel-1): the last
  kernel-1 FSMN inputs. Source attention sees the window only.

One deliberate difference from FunASR's graph: ``sample_ids`` carries the blank id where the
argmax is ``<s>`` or ``</s>``. Our stream and funasr-onnx (which reads ``logits``) drop those ids;
sherpa-onnx reads ``sample_ids`` and drops only blank, so from FunASR's export it prints a
literal ``</s>`` (on the demo streaming model, at the end of most utterances).

The cache keeps only past inputs, so the graph equals the PyTorch step only for a decoder whose
FSMN looks back alone (``sanm_shfit`` = (kernel-1)/2, the released model's): the export refuses
others. Both graphs reuse the model's own modules and equal FunASR's export modules (tested).
"""

from typing import List, Tuple

import torch
from torch import nn

from funasr_lite.models.modules.mask import sequence_mask

ENCODER_INPUT_NAMES = ("speech", "speech_lengths")
ENCODER_OUTPUT_NAMES = ("enc", "enc_len", "alphas")
DECODER_INPUT_NAMES = ("enc", "enc_len", "acoustic_embeds", "acoustic_embeds_len")


class StreamingExportError(ValueError):
    """A streaming model the online graphs cannot represent."""


class StreamingEncoderGraph(nn.Module):
    """FunASR's online encoder export (see the module docstring)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.encoder = model.encoder
        self.predictor = model.predictor

    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        mask = sequence_mask(speech_lengths, speech.size(1))
        x = speech
        for layer in list(self.encoder.encoders0) + list(self.encoder.encoders):
            x = layer(x, mask)
        enc = self.encoder.after_norm(x)
        alphas = self.predictor.compute_alphas(enc, mask)  # FunASR: padded frames not zeroed first
        return enc, speech_lengths, alphas


class StreamingDecoderGraph(nn.Module):
    """FunASR's online decoder export (see the module docstring)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        decoder = model.decoder
        self.decoder = decoder
        self.blank_id, self.special_ids = int(model.blank_id), (int(model.sos), int(model.eos))
        self.memory_layers = [layer for layer in list(decoder.decoders) + list(decoder.decoders2 or ())]
        for layer in decoder.decoders:  # (decoders2, absent in released models, get FunASR's past-only cache too)
            left, right = layer.self_attn.fsmn_padding
            if right != 0:
                raise StreamingExportError(
                    f"the online decoder graph keeps only past FSMN inputs, but this decoder's FSMN also reads "
                    f"{right} later tokens (decoder_conf.sanm_shfit must be (kernel_size - 1) // 2, as in the "
                    "released paraformer-zh-streaming)")
        self.kernel_size = int(self.memory_layers[0].self_attn.fsmn_block.kernel_size[0]) if self.memory_layers else 1
        self.num_caches = len(self.memory_layers)

    @property
    def input_names(self) -> List[str]:
        return list(DECODER_INPUT_NAMES) + [f"in_cache_{i}" for i in range(self.num_caches)]

    @property
    def output_names(self) -> List[str]:
        return ["logits", "sample_ids"] + [f"out_cache_{i}" for i in range(self.num_caches)]

    @staticmethod
    def _memory(block, x: torch.Tensor, mask: torch.Tensor, cache: torch.Tensor):
        """FSMN with a cache of past inputs: (B, N, d) -> (B, N, d), the new cache (B, d, k-1)."""
        inputs = x * mask
        frames = torch.cat([cache, inputs.transpose(1, 2)], dim=2)
        out = block.fsmn_block(frames).transpose(1, 2)
        return (out + inputs) * mask, frames[:, :, -cache.size(2):]

    def forward(self, enc: torch.Tensor, enc_len: torch.Tensor, acoustic_embeds: torch.Tensor,
                acoustic_embeds_len: torch.Tensor, *caches: torch.Tensor):
        token_mask = sequence_mask(acoustic_embeds_len, acoustic_embeds.size(1)).unsqueeze(-1).to(enc.dtype)
        memory_mask = sequence_mask(enc_len, enc.size(1))
        x = acoustic_embeds
        out_caches = []
        for index, layer in enumerate(self.memory_layers):
            transformed = layer.feed_forward(layer.norm1(x))
            memory, cache = self._memory(layer.self_attn, layer.norm2(transformed), token_mask, caches[index])
            out_caches.append(cache)
            x = x + memory
            if layer.src_attn is not None:
                x = x + layer.src_attn(layer.norm3(x), enc, memory_mask)
        for layer in self.decoder.decoders3:
            x = layer.feed_forward(layer.norm1(x))
        logits = self.decoder.output_layer(self.decoder.after_norm(x))
        ids = logits.argmax(dim=-1)
        special = (ids == self.special_ids[0]) | (ids == self.special_ids[1])
        return (logits, ids.masked_fill(special, self.blank_id), *out_caches)


__all__ = ["StreamingEncoderGraph", "StreamingDecoderGraph", "StreamingExportError", "ENCODER_INPUT_NAMES",
           "ENCODER_OUTPUT_NAMES", "DECODER_INPUT_NAMES"]
