"""Decoding an attention encoder-decoder (models.aed.Conformer), and CTC greedy for any model.

Three searches over a padded batch of encoder outputs (B, T', D):

* ``greedy``: attention greedy (:meth:`Conformer.attention_greedy`), batched over utterances;
* ``beam``: batched attention beam search with CTC prefix scores and Transformer-LM shallow
  fusion (:func:`aed_beam_search`), FunASR's/ESPnet's weighting
      total = (1 - ctc_weight) * decoder + ctc_weight * ctc + lm_weight * lm + length_bonus * |y|
  where each part is a cumulative log-prob: decoder sum log P(y_i | y_<i, x) (``</s>`` included),
  ctc log P_ctc(output starts with y) while searching and log P_ctc(output == y) once ``</s>``
  is chosen, lm the LM's sentence log-prob (``</s>`` included), |y| the tokens without ``</s>``;
* ``ctc_greedy``: best CTC path, repeats merged, blanks dropped (:func:`ctc_greedy`), for the
  AED and for a Paraformer with a CTC head.

Beam search layout: every utterance owns ``beam_size`` rows for the whole search (B x W rows in
one decoder/LM/CTC call per step). Each step, the decoder (+ LM) picks ``pre_beam`` candidates
per row (1.5 x beam with CTC, as ESPnet's pre-beam, else beam), CTC scores those, and the best
W of the W x pre_beam extensions of each utterance are kept. A hypothesis that chose ``</s>``
keeps its row with its score frozen (it can only be extended by ``</s>`` at no cost), so the
search stops when every utterance's W best hypotheses have ended; the answer is the best row.
Hypotheses end at the latest after ``T'_b - 1`` tokens (FunASR's maxlenratio 0: the maximum
output length is the encoder length). ``<blank>`` and ``<s>`` are never output tokens.

CTC prefix scores of a batch: utterance b's CTC log-probs are padded past T'_b with frames that
emit blank with probability 1, which leaves every prefix and sequence probability unchanged, so
one frame loop serves all utterances (:class:`BatchCTCPrefixScorer`).

Timestamps come from the CTC head: the final hypothesis is force-aligned to its utterance's
CTC log-probs (:mod:`funasr_lite.decode.ctc_align`); a model without a CTC head has none.
"""

from __future__ import annotations

import logging
from typing import Dict, List, Optional

import torch

from funasr_lite.decode.beam_search import Hypothesis
from funasr_lite.decode.ctc_align import ctc_token_timestamps
from funasr_lite.decode.ctc_prefix_score import CTCPrefixScorer, CTCPrefixState
from funasr_lite.models.modules.mask import sequence_mask

logger = logging.getLogger(__name__)

AED_PART_NAMES = ("decoder", "ctc", "lm", "length_bonus")
PRE_BEAM_RATIO = 1.5  # ESPnet/FunASR pre_beam_ratio


class BatchCTCPrefixScorer(CTCPrefixScorer):
    """CTC prefix scoring of B utterances x W rows each in one frame loop.

    ctc_logp (B, T, V) padded, lengths (B,): frames at or past a length become certain blanks.
    Row r belongs to utterance r // rows_per_utterance.
    """

    def __init__(self, ctc_logp: torch.Tensor, lengths: torch.Tensor, rows_per_utterance: int,
                 blank_id: int = 0, eos_id: Optional[int] = 2):
        if ctc_logp.dim() != 3:
            raise ValueError(f"ctc_logp must be (B, T, V), got shape {tuple(ctc_logp.shape)}")
        batch, frames, vocab = ctc_logp.shape
        padding = ~sequence_mask(lengths.to(ctc_logp.device), frames)  # (B, T)
        certain_blank = torch.full((vocab,), float("-inf"), dtype=ctc_logp.dtype, device=ctc_logp.device)
        certain_blank[blank_id] = 0.0
        padded = torch.where(padding.unsqueeze(-1), certain_blank, ctc_logp)
        self.ctc_logp = padded.transpose(0, 1).contiguous()  # (T, B, V)
        self.blank_id = blank_id
        self.eos_id = eos_id
        self.num_frames = frames
        self.row_utterance = torch.arange(batch * rows_per_utterance, device=ctc_logp.device) // rows_per_utterance

    def frame_token_logp(self, candidates: torch.Tensor) -> torch.Tensor:
        return self.ctc_logp[:, self.row_utterance.unsqueeze(1), candidates]  # (T, N, K)

    def frame_blank_logp(self) -> torch.Tensor:
        return self.ctc_logp[:, self.row_utterance, self.blank_id].unsqueeze(-1)  # (T, N, 1)

    def initial_state(self) -> CTCPrefixState:
        """Every row holds the empty prefix."""
        blank = self.ctc_logp[:, self.row_utterance, self.blank_id]  # (T, N)
        blank_run = torch.cat([blank.new_zeros(1, blank.size(1)), torch.cumsum(blank, dim=0)])  # (T+1, N)
        forward_logp = torch.stack([torch.full_like(blank_run, float("-inf")), blank_run], dim=1)  # (T+1, 2, N)
        rows = blank.size(1)
        return CTCPrefixState(
            forward_logp=forward_logp,
            prefix_logp=blank.new_zeros(rows),
            last_token=torch.full((rows,), -1, dtype=torch.long, device=blank.device),
        )


def _banned_tokens(vocab_size: int, blank_id: int, sos_id: int, eos_id: int, device) -> torch.Tensor:
    banned = torch.zeros(vocab_size, dtype=torch.bool, device=device)
    for token in (blank_id, sos_id):
        if 0 <= token < vocab_size and token != eos_id:
            banned[token] = True
    return banned


@torch.no_grad()
def aed_beam_search(
    model,
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    lm=None,
    beam_size: int = 10,
    ctc_weight: float = 0.0,
    lm_weight: float = 0.0,
    length_bonus: float = 0.0,
    nbest: int = 1,
    pre_beam_size: Optional[int] = None,
    max_lengths: Optional[torch.Tensor] = None,
) -> List[List[Hypothesis]]:
    """N-best hypotheses of each utterance of a batch, best first (see the module docstring).

    model: a :class:`~funasr_lite.models.aed.model.Conformer` (decoder, ctc, sos/eos/blank ids);
    encoder_out (B, T', D), encoder_out_lens (B,); lm: a token LM with ``score_step`` /
    ``select_cache`` (:class:`~funasr_lite.models.lm.TransformerLM`), used when lm_weight != 0.
    Hypothesis.scores holds the unweighted parts decoder, ctc, lm and length_bonus (the token
    count); Hypothesis.score the weighted total. max_lengths (B,): tokens after which </s> is
    forced (default: encoder length - 1).
    """
    if beam_size < 1 or nbest < 1:
        raise ValueError(f"beam_size and nbest must be >= 1, got {beam_size}, {nbest}")
    if not 0.0 <= ctc_weight <= 1.0:
        raise ValueError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
    use_ctc, use_lm = ctc_weight > 0.0, lm_weight != 0.0
    if use_ctc and getattr(model, "ctc", None) is None:
        raise ValueError("ctc_weight > 0 needs a model with a CTC head")
    if use_lm and lm is None:
        raise ValueError("lm_weight != 0 needs an lm")
    decoder, eos = model.decoder, model.eos
    batch, _, _ = encoder_out.shape
    device = encoder_out.device
    vocab = model.vocab_size
    width = beam_size
    rows = batch * width
    banned = _banned_tokens(vocab, model.blank_id, model.sos, eos, device)
    num_candidates = min(pre_beam_size or (int(PRE_BEAM_RATIO * width) if use_ctc else width), int((~banned).sum()))
    is_eos_token = torch.arange(vocab, device=device) == eos

    memory = encoder_out.repeat_interleave(width, dim=0)
    memory_mask = sequence_mask(encoder_out_lens, encoder_out.size(1)).repeat_interleave(width, dim=0)
    if max_lengths is None:
        max_lengths = encoder_out_lens - 1
    max_tokens = max_lengths.to(device).repeat_interleave(width)  # tokens before </s> is forced
    tokens = torch.full((rows, 1), model.sos, dtype=torch.long, device=device)
    parts = {name: torch.zeros(rows, dtype=torch.float32, device=device) for name in AED_PART_NAMES}
    weights = {"decoder": 1.0 - ctc_weight, "ctc": ctc_weight, "lm": lm_weight, "length_bonus": length_bonus}
    alive = (torch.arange(rows, device=device) % width) == 0  # one empty hypothesis per utterance
    ended = torch.zeros(rows, dtype=torch.bool, device=device)
    ctc_scorer = ctc_state = None
    if use_ctc:
        ctc_scorer = BatchCTCPrefixScorer(model.ctc.log_softmax(encoder_out).float(), encoder_out_lens, width,
                                          model.blank_id, eos)
        ctc_state = ctc_scorer.initial_state()
    decoder_cache = lm_cache = None

    for step in range(int(max_tokens.max()) + 1 if rows else 0):
        if bool((ended | ~alive).all()):
            break
        decoder_logp, decoder_cache = decoder.forward_one_step(tokens, memory, memory_mask, decoder_cache)
        decoder_logp = decoder_logp.float()
        full = (1.0 - ctc_weight) * decoder_logp
        if use_lm:
            lm_logp, lm_cache = lm.score_step(tokens, lm_cache)
            lm_logp = lm_logp.float()
            full = full + lm_weight * lm_logp
        must_end = step >= max_tokens  # (N,)
        full = full.masked_fill(banned, float("-inf"))
        full = torch.where(must_end.unsqueeze(1) & ~is_eos_token, float("-inf"), full)
        # an ended hypothesis can only be continued by </s>, at no cost
        full = torch.where(ended.unsqueeze(1), torch.where(is_eos_token, 0.0, float("-inf")), full)
        candidate_full, candidates = full.topk(num_candidates, dim=1)  # (N, K)
        impossible = torch.isinf(candidate_full)
        candidates = candidates.masked_fill(impossible, eos)  # a placeholder the CTC scorer accepts
        is_eos = candidates == eos

        new_parts = {
            "decoder": parts["decoder"][:, None] + decoder_logp.gather(1, candidates),
            "length_bonus": parts["length_bonus"][:, None] + (~is_eos).float(),
            "ctc": parts["ctc"][:, None].expand_as(candidate_full),
            "lm": parts["lm"][:, None].expand_as(candidate_full),
        }
        if use_lm:
            new_parts["lm"] = parts["lm"][:, None] + lm_logp.gather(1, candidates)
        if use_ctc:
            ctc_scores = ctc_scorer.score_candidates(ctc_state, candidates)
            new_parts["ctc"] = ctc_scores.prefix_logp
        frozen = ended.unsqueeze(1)
        for name in AED_PART_NAMES:
            new_parts[name] = torch.where(frozen, parts[name][:, None], new_parts[name])

        total = sum(weights[name] * new_parts[name] for name in AED_PART_NAMES)  # (N, K)
        total = total.masked_fill(impossible | ~alive.unsqueeze(1), float("-inf"))
        best_total, flat = total.view(batch, width * num_candidates).topk(width, dim=1)  # (B, W)
        source_rows = (torch.arange(batch, device=device).unsqueeze(1) * width + flat // num_candidates).reshape(-1)
        candidate_index = (flat % num_candidates).reshape(-1)

        chosen = candidates[source_rows, candidate_index]
        tokens = torch.cat([tokens[source_rows], chosen.unsqueeze(1)], dim=1)
        parts = {name: value[source_rows, candidate_index] for name, value in new_parts.items()}
        ended = ended[source_rows] | (chosen == eos)
        alive = torch.isfinite(best_total.reshape(-1))
        decoder_cache = decoder.select_cache(decoder_cache, source_rows)
        if use_lm:
            lm_cache = lm.select_cache(lm_cache, source_rows)
        if use_ctc:
            ctc_state = ctc_scorer.select(ctc_scores, source_rows, candidate_index)

    total = sum(weights[name] * parts[name] for name in AED_PART_NAMES).masked_fill(~alive, float("-inf"))
    results = []
    for b in range(batch):
        utterance_rows = torch.arange(b * width, (b + 1) * width, device=device)
        order = utterance_rows[torch.argsort(total[utterance_rows], descending=True)][:nbest]
        hyps = []
        for row in order.tolist():
            if not bool(alive[row]):
                continue
            hyps.append(Hypothesis(
                token_ids=[t for t in tokens[row, 1:].tolist() if t != eos],
                score=float(total[row]),
                scores={name: float(parts[name][row]) for name in AED_PART_NAMES},
            ))
        results.append(hyps)
    return results


@torch.no_grad()
def ctc_greedy(ctc_logp: torch.Tensor, lengths: torch.Tensor, blank_id: int = 0) -> List[Dict]:
    """Best path per frame, repeats merged, blanks dropped: ctc_logp (B, T, V), lengths (B,) ->
    one dict per utterance: token_ids, score (the best path's log-prob, sum of frame maxima)."""
    best_logp, best = ctc_logp.max(dim=-1)
    results = []
    for b in range(ctc_logp.size(0)):
        length = int(lengths[b])
        path = torch.unique_consecutive(best[b, :length])
        results.append({
            "token_ids": [t for t in path.tolist() if t != blank_id],
            "score": float(best_logp[b, :length].sum()),
        })
    return results


@torch.no_grad()
def search_batch(model, feats: torch.Tensor, lengths: torch.Tensor, decode_mode: str, lm=None,
                 beam_size: int = 10, ctc_weight: float = 0.0, lm_weight: float = 0.0,
                 length_bonus: float = 0.0, frame_ms: Optional[float] = None) -> List[Dict]:
    """Decode model input (B, T, D) -> one dict per utterance: token_ids (no special tokens),
    score, scores (beam: the parts), timestamp ([[start_ms, end_ms], ...] from the CTC
    alignment when frame_ms is given and the model has a CTC head, else absent).

    decode_mode: greedy | beam (an AED model) or ctc_greedy (any model with encode() and a CTC head).
    An utterance too short for the encoder's subsampling (fewer frames than its
    ``embed.min_input_frames``) gets an empty hypothesis.
    """
    min_frames = int(getattr(getattr(model.encoder, "embed", None), "min_input_frames", 1) or 1)
    usable = lengths >= min_frames
    if not bool(usable.all()):
        outputs: List[Dict] = [{"token_ids": [], "score": 0.0} for _ in range(feats.size(0))]
        if frame_ms is not None and getattr(model, "ctc", None) is not None:
            for output in outputs:
                output["timestamp"] = []
        rows = usable.nonzero().flatten()
        if rows.numel() > 0:
            kept_lengths = lengths[rows]
            kept = search_batch(model, feats[rows, : int(kept_lengths.max())], kept_lengths, decode_mode, lm,
                                beam_size, ctc_weight, lm_weight, length_bonus, frame_ms)
            for row, output in zip(rows.tolist(), kept):
                outputs[row] = output
        return outputs
    encoder_out, encoder_out_lens = model.encode(feats, lengths)
    ctc = getattr(model, "ctc", None)
    ctc_logp = ctc.log_softmax(encoder_out).float() if ctc is not None else None
    if decode_mode == "ctc_greedy":
        if ctc_logp is None:
            raise ValueError("decode_mode ctc_greedy needs a model with a CTC head")
        outputs = ctc_greedy(ctc_logp, encoder_out_lens, model.blank_id)
    elif decode_mode == "greedy":
        outputs = model.attention_greedy(encoder_out, encoder_out_lens)
    elif decode_mode == "beam":
        hyps = aed_beam_search(model, encoder_out, encoder_out_lens, lm=lm, beam_size=beam_size,
                               ctc_weight=ctc_weight, lm_weight=lm_weight, length_bonus=length_bonus)
        outputs = [{"token_ids": h[0].token_ids, "score": h[0].score, "scores": dict(h[0].scores)} for h in hyps]
    else:
        raise ValueError(f"unknown decode_mode {decode_mode!r} for {type(model).__name__}")
    dropped = {model.blank_id, model.sos, model.eos}
    for b, output in enumerate(outputs):
        output["token_ids"] = [t for t in output["token_ids"] if t not in dropped]
        if frame_ms is not None and ctc_logp is not None:
            stamps = ctc_token_timestamps(ctc_logp[b, : int(encoder_out_lens[b])], output["token_ids"], frame_ms,
                                          model.blank_id)
            if stamps is None:
                logger.warning("hypothesis %d of the batch has more tokens than CTC frames: no timestamps", b)
            output["timestamp"] = stamps or []
    return outputs


__all__ = ["AED_PART_NAMES", "BatchCTCPrefixScorer", "aed_beam_search", "ctc_greedy", "search_batch"]
