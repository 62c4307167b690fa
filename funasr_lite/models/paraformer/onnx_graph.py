"""Paraformer greedy inference as one traceable graph, for ONNX export (FunASR's export interface).

``ParaformerOnnxGraph(model)(speech, speech_lengths)`` computes what
:meth:`funasr_lite.models.paraformer.model.Paraformer.decode_greedy` computes, written so that
``torch.onnx.export`` traces it with dynamic batch and time axes: every size that depends on the
data (the token axis: the most tokens any utterance in the batch has) stays a tensor, never a
Python int. It reuses the model's own encoder, predictor layers and decoder; only the CIF
integration is restated (the same formula as :func:`funasr_lite.models.paraformer.cif.cif_integrate`,
with a tensor width).

Inputs (FunASR's names): ``speech`` (B, T, D) float32 LFR+CMVN features, zero-padded;
``speech_lengths`` (B,) int32.
Outputs: ``logits`` (B, N, V) log-probabilities (positions past an utterance's token count hold
``</s>`` with log-prob 0, so a client that stops at ``</s>`` stops there); ``token_num`` (B,) int32,
the token count the decoder used (round of the CIF weight sum, as our PyTorch path);
``alphas`` and ``peaks`` (B, T'+1) the CIF weights and accumulator per predictor frame (the
tail frame included); ``alpha_lengths`` (B,) int32, the valid frames of alphas/peaks per
utterance. The last three exist for timestamps only (see funasr_lite/export/onnx_export.py).

A BiCifParaformer's timestamps come from its upsampled head instead, under FunASR's BiCif names:
``us_alphas`` and ``us_cif_peak`` (B, T' x upsample_times), the head's weights rescaled to the
token count and their accumulator at 1 - 1e-4 (FunASR's ``get_upsample_timestmap``), and
``us_alpha_lengths`` (B,) int32. Its file keeps FunASR's four outputs (logits, token_num,
us_alphas, us_cif_peak), the interface funasr-onnx and sherpa-onnx read as BiCif.
"""

from typing import Optional, Tuple

import torch
from torch import nn

from funasr_lite.models.modules.mask import sequence_mask
from funasr_lite.models.paraformer.seaco import HotwordContext

INPUT_NAMES = ("speech", "speech_lengths")
HOTWORD_INPUT_NAME = "bias_embed"  # hotword models (SeACo, Contextual): (B, N, D), FunASR's name
EMBEDDER_INPUT_NAME, EMBEDDER_OUTPUT_NAME = "hotword", "hw_embed"  # model_eb.onnx
CLIENT_OUTPUT_NAMES = ("logits", "token_num")
TIMESTAMP_OUTPUT_NAMES = ("alphas", "peaks", "alpha_lengths")
BICIF_TIMESTAMP_OUTPUT_NAMES = ("us_alphas", "us_cif_peak", "us_alpha_lengths")
# Log-prob given to the non-</s> tokens at padded token positions.
_PADDING_LOG_PROB = -1.0e4


class ParaformerOnnxGraph(nn.Module):
    """Wrap an eval-mode Paraformer (SAN-M or Conformer encoder, CIF v1/v2 predictor) for export."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        predictor = model.predictor
        self.threshold = float(predictor.threshold)
        self.tail_threshold = float(predictor.tail_threshold)
        self.tail_mask = bool(predictor.tail_mask)
        self.upsample = int(getattr(model, "timestamp_upsample", 1))
        if self.upsample > 1:  # BiCif: timestamps from the upsampled head, 4 outputs for the clients
            self.timestamp_output_names = BICIF_TIMESTAMP_OUTPUT_NAMES
            self.client_output_names = CLIENT_OUTPUT_NAMES + BICIF_TIMESTAMP_OUTPUT_NAMES[:2]
        else:
            self.timestamp_output_names = TIMESTAMP_OUTPUT_NAMES
            self.client_output_names = CLIENT_OUTPUT_NAMES
        self.takes_hotwords = hasattr(model, "hotword_embeddings")
        self.input_names = INPUT_NAMES + ((HOTWORD_INPUT_NAME,) if self.takes_hotwords else ())
        padding_row = torch.full((model.vocab_size,), _PADDING_LOG_PROB)
        padding_row[model.eos] = 0.0
        self.register_buffer("padding_row", padding_row, persistent=False)

    def _integrate(self, hidden: torch.Tensor, alphas: torch.Tensor, width: torch.Tensor):
        """cif_integrate with a tensor width: -> embeds (B, width, D), peaks (B, T)."""
        scaled = alphas.double() / self.threshold
        cumsum = torch.cumsum(scaled, dim=1)
        cumsum_before = torch.cat([torch.zeros_like(cumsum[:, :1]), cumsum[:, :-1]], dim=1)
        fires = torch.floor(cumsum[:, -1])  # (B,) tokens the integrator emits
        token_index = torch.arange(width, device=alphas.device).to(torch.float64)[None, :, None]
        overlap_end = torch.minimum(cumsum[:, None, :], token_index + 1)
        overlap_start = torch.maximum(cumsum_before[:, None, :], token_index)
        weights = (overlap_end - overlap_start).clamp(min=0.0) * self.threshold  # (B, N, T)
        emitted = token_index[..., 0] < fires[:, None]
        weights = weights * emitted[..., None].to(weights.dtype)
        embeds = torch.bmm(weights.to(hidden.dtype), hidden)
        peaks = ((cumsum - torch.floor(cumsum_before)) * self.threshold).to(alphas.dtype)
        return embeds, peaks

    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor,
                bias_embed: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, ...]:
        model, predictor = self.model, self.model.predictor
        encoder_out, encoder_lengths = model.encode(speech, speech_lengths.long())
        num_frames = encoder_out.size(1)
        mask = sequence_mask(encoder_lengths, num_frames)
        hidden = encoder_out.float() * mask.unsqueeze(-1).to(torch.float32)
        alphas = predictor.compute_alphas(hidden, mask)
        token_num = alphas.sum(-1)
        alpha_lengths = encoder_lengths
        if self.tail_threshold > 0.0:
            # CifPredictorBase.append_tail, with the one-hot made from a traced arange.
            hidden = torch.cat([hidden, torch.zeros_like(hidden[:, :1])], dim=1)
            alphas = torch.cat([alphas, torch.zeros_like(alphas[:, :1])], dim=1)
            if self.tail_mask:
                tail_position = mask.long().sum(1)
            else:
                tail_position = torch.zeros_like(encoder_lengths) + num_frames
            frame_index = torch.arange(alphas.size(1), device=alphas.device)
            tail = (frame_index[None, :] == tail_position[:, None]).to(alphas.dtype) * self.tail_threshold
            alphas = alphas + tail
            token_num = torch.floor(alphas.sum(-1))
            alpha_lengths = encoder_lengths + 1
        token_lengths = torch.round(token_num).long()
        width = token_lengths.max()
        embeds, peaks = self._integrate(hidden, alphas, width)
        # Hotwords: every one attended (no filter: the graph equals PyTorch up to nfilter of them).
        context = HotwordContext(bias_embed[0], nfilter=0) if bias_embed is not None else None
        log_probs = model.decoder_log_probs(encoder_out, encoder_lengths, embeds, token_lengths,
                                            context=context).float()
        valid = sequence_mask(token_lengths, log_probs.size(1))
        log_probs = torch.where(valid.unsqueeze(-1), log_probs, self.padding_row.to(log_probs.dtype))
        if self.upsample > 1:
            us_alphas, us_peaks = predictor.upsampled_timestamp_signals(encoder_out, mask, token_lengths)
            return (log_probs, token_lengths.to(torch.int32), us_alphas, us_peaks,
                    (encoder_lengths * self.upsample).to(torch.int32))
        return (log_probs, token_lengths.to(torch.int32), alphas, peaks, alpha_lengths.to(torch.int32))


class HotwordEmbedderGraph(nn.Module):
    """FunASR's ``model_eb.onnx``: hotword ids (N, L) int32, padded with 0 -> every LSTM step,
    time-major (L, N, D); a client takes step len-1 of each hotword (funasr-onnx does). SeACo reads
    the decoder's embedding (its ``lstm_proj`` applied when it has one), Contextual its bias_embed."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, hotword: torch.Tensor) -> torch.Tensor:
        model = self.model
        use_decoder = not hasattr(model, "bias_embed") or getattr(model, "use_decoder_embedding", False)
        embed = model.decoder.embed if use_decoder else model.bias_embed
        output = model.bias_encoder(embed(hotword.long()))[0]
        if getattr(model, "lstm_proj", None) is not None:
            output = model.lstm_proj(output)
        return output.transpose(0, 1)


__all__ = ["BICIF_TIMESTAMP_OUTPUT_NAMES", "EMBEDDER_INPUT_NAME", "EMBEDDER_OUTPUT_NAME", "HOTWORD_INPUT_NAME",
           "HotwordEmbedderGraph", "CLIENT_OUTPUT_NAMES", "INPUT_NAMES", "ParaformerOnnxGraph",
           "TIMESTAMP_OUTPUT_NAMES"]
