"""ParaformerStreaming (FunASR's ``paraformer-zh-streaming``): Paraformer with the chunked SAN-M
encoder (:class:`SANMEncoderChunkOpt`), decoded step by step with caches.

One step takes the LFR frames of one ``chunk_size[1]`` stretch of audio (600 ms at [0, 10, 5]):

1. encoder: the window = the previous step's last chunk_size[0] + chunk_size[2] frames + the new
   ones; attention also reads the K/V of the last ``encoder_chunk_look_back`` steps;
2. CIF: the window's alphas, the look-ahead's zeroed until the final step, the weight left since
   the last fire carried in as one frame; the final step adds a tail_threshold frame;
3. decoder (only when CIF fired): the fired embeddings against the encoder window, with the FSMN
   inputs and the source K/V of the last ``decoder_chunk_look_back`` steps kept;
4. greedy tokens (blank, <s>, </s> dropped).

Each part is FunASR's ``forward_chunk`` ported with its quirks (the tail chunk's double scaling,
the decoder's FSMN cache with its right padding, caches untouched on steps that fire nothing);
the step grid over the audio and the frames are ``funasr_lite.inference.streaming``'s. All
per-stream state lives in a :class:`StreamState`, never on the model: many streams share one model.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch

from funasr_lite.models.encoders.sanm import EncoderChunkState, SANMEncoderChunkOpt
from funasr_lite.models.modules.scama import cross_attention_mask, frame_alignments, remove_chunk
from funasr_lite.models.paraformer.decoder_sanm import DecoderChunkState
from funasr_lite.models.paraformer.model import Paraformer


@dataclass
class StreamState:
    """Everything one stream carries between steps."""

    encoder: EncoderChunkState
    decoder: DecoderChunkState
    cif_carry: Tuple[torch.Tensor, torch.Tensor]
    frames: int = 0  # LFR frames fed so far (the tail chunk adds none)
    # The alphas CIF counted, step after step: one per LFR frame from frame ``alpha_start`` on
    # (negative: the zero frames before the first step count too, as in FunASR), the tail's last.
    # What the timestamps are read from; 16 floats a second of audio.
    alphas: List[torch.Tensor] = field(default_factory=list)
    alpha_start: Optional[int] = None


@dataclass
class StepOutput:
    """One step's result: the token ids fired (blank/<s>/</s> removed) and their log-probabilities."""

    token_ids: List[int]
    scores: List[float]
    fired: int  # tokens CIF fired (before removing blank/<s>/</s>)


class ParaformerStreaming(Paraformer):
    """FunASR's ParaformerStreaming: a Paraformer whose encoder is :class:`SANMEncoderChunkOpt`.
    ``decoder_attention_chunk_type`` is the SCAMA cross-attention mask of training (only FunASR's
    "chunk")."""

    def __init__(self, *args, decoder_attention_chunk_type: str = "chunk", **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.encoder, SANMEncoderChunkOpt):
            raise ValueError(f"ParaformerStreaming needs encoder SANMEncoderChunkOpt, got {type(self.encoder).__name__}")
        if decoder_attention_chunk_type != "chunk":
            raise NotImplementedError(f"decoder_attention_chunk_type={decoder_attention_chunk_type!r} "
                                      "(only 'chunk', FunASR's)")
        self.decoder_attention_chunk_type = decoder_attention_chunk_type

    streaming = True  # decoded step by step; Speech2Text allows greedy search only

    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor, text: torch.Tensor,
                text_lengths: torch.Tensor):
        """Training (FunASR's ParaformerStreaming.forward): each step draws one of the encoder's
        chunk configurations (``torch.randint`` on the global generator, as FunASR; the first in
        eval), runs whole utterances through its SCAMA chunking, and computes Paraformer's losses
        in the chunk domain: CIF counts each window's stride frames only, each target token
        attends to the windows up to the one where CIF fired it (``cross_attention_mask``), the
        CTC branch reads the frames taken back out of the chunk domain."""
        text = text[:, : int(text_lengths.max())]
        index = self.encoder.choose_config(self.training)
        if self.specaug is not None and self.training:
            speech, speech_lengths = self.specaug(speech, speech_lengths)
        encoder_out, encoder_lens, plan = self.encoder.forward_scama(speech, speech_lengths, index)
        ctc_input = remove_chunk(encoder_out, encoder_lens, plan) if self.ctc is not None else None
        encoder_out = encoder_out * plan.tensor("mask_shift", encoder_out, encoder_out.size(0))
        training = self.training

        def chunk_mask(alphas: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
            alignments = frame_alignments(alphas, encoder_lens, training)
            return cross_attention_mask(alignments, encoder_lens, plan, target_lengths, training, encoder_out.dtype)

        alpha_mask = plan.tensor("mask_predictor", encoder_out, encoder_out.size(0))[..., 0]
        return self.losses(encoder_out, encoder_lens, text, text_lengths, ctc_input=ctc_input,
                           alpha_mask=alpha_mask, chunk_mask_fn=chunk_mask)

    def init_stream(self, chunk_size=(0, 10, 5), encoder_chunk_look_back: int = 4,
                    decoder_chunk_look_back: int = 1) -> StreamState:
        """A fresh stream's state (FunASR's ``init_cache``; its defaults are look-backs 0, its
        model cards and demo pass 4 and 1, ours)."""
        chunk_size = tuple(int(c) for c in chunk_size)
        if len(chunk_size) != 3 or chunk_size[1] <= 0 or min(chunk_size) < 0:
            raise ValueError(f"chunk_size must be (left, step, look-ahead) LFR frames with step > 0, got {chunk_size}")
        for name, value in (("encoder_chunk_look_back", encoder_chunk_look_back),
                            ("decoder_chunk_look_back", decoder_chunk_look_back)):
            if value < -1:
                raise ValueError(f"{name} must be >= -1 (-1: all steps), got {value}")
        dim = self.encoder.output_size()
        parameter = next(self.parameters())
        return StreamState(
            encoder=EncoderChunkState(chunk_size=chunk_size, look_back=encoder_chunk_look_back),
            decoder=DecoderChunkState(chunk_size=chunk_size, look_back=decoder_chunk_look_back),
            cif_carry=(parameter.new_zeros(1, 1, dim), parameter.new_zeros(1, 1)),
        )

    @torch.no_grad()
    def forward_step(self, feats: Optional[torch.Tensor], state: StreamState, is_final: bool) -> StepOutput:
        """One step: feats (1, T, input_size) LFR+CMVN frames, or None for FunASR's tail chunk (a
        final step of under one LFR frame of audio) -> the tokens it emits."""
        left, step, _ = state.encoder.chunk_size
        context = left + state.encoder.chunk_size[2]
        window_start = state.encoder.start - context  # absolute LFR frame of the window's first frame
        encoder_out = self.encoder.forward_chunk(feats, state.encoder)
        if feats is not None:
            state.frames += feats.size(1)
        embeds, fired, state.cif_carry, alphas = self.predictor.forward_chunk(
            encoder_out, state.cif_carry, state.encoder.chunk_size, is_final)
        if state.alpha_start is None:
            state.alpha_start = window_start + left
        counted = alphas[0, left:] if is_final else alphas[0, left:left + step]
        state.alphas.append(counted.detach().cpu())
        if is_final and self.predictor.tail_threshold > 0.0:
            state.alphas.append(torch.tensor([self.predictor.tail_threshold]))
        if fired < 1:
            return StepOutput([], [], 0)
        logits = self.decoder.forward_chunk(encoder_out, embeds, state.decoder)
        log_probs = torch.log_softmax(logits.float(), dim=-1)[0]
        best, ids = log_probs.max(dim=-1)
        keep = [(int(i), float(s)) for i, s in zip(ids, best) if int(i) not in (self.blank_id, self.sos, self.eos)]
        return StepOutput([i for i, _ in keep], [s for _, s in keep], fired)

    def decode_greedy(self, feats: torch.Tensor, feats_lengths: torch.Tensor, timestamp_source: str = "model",
                      context=None) -> List[Dict]:
        """Whole utterances (the offline API, ``infer`` without ``--streaming``) decoded as FunASR's
        ``generate`` decodes a file with this model: in streaming steps of chunk_size[1] frames of
        the default stream (chunk [0, 10, 5], look-backs 4 and 1), the rest of the frames as the
        final step, none left: the tail chunk. (From audio FunASR also drops a last piece under
        960 samples; from frames that piece is the last frame, kept.) Same dicts as
        :meth:`Paraformer.decode_greedy`; alphas are the counted track from frame 0 (the weight of
        the zero frames before the first step added to frame 0's), peaks None."""
        if context is not None:
            raise ValueError("ParaformerStreaming takes no hotwords")
        results = []
        for index in range(feats.size(0)):
            state = self.init_stream()
            frames = feats[index, : int(feats_lengths[index])][None]
            step = state.encoder.chunk_size[1]
            full = frames.size(1) // step
            ids: List[int] = []
            scores: List[float] = []
            fired = 0
            for start in range(0, full * step, step):
                output = self.forward_step(frames[:, start:start + step], state, is_final=False)
                ids, scores, fired = ids + output.token_ids, scores + output.scores, fired + output.fired
            rest = frames[:, full * step:]
            output = self.forward_step(rest if rest.size(1) else None, state, is_final=True)
            ids, scores, fired = ids + output.token_ids, scores + output.scores, fired + output.fired
            alphas = torch.cat(state.alphas)
            before = -state.alpha_start  # frames counted before frame 0
            if before > 0:
                alphas = torch.cat([alphas[before:before + 1] + alphas[:before].sum(), alphas[before + 1:]])
            results.append({"token_ids": ids, "score": float(sum(scores)), "token_num": fired, "alphas": alphas,
                            "peaks": None})
        return results


__all__ = ["ParaformerStreaming", "StreamState", "StepOutput"]
