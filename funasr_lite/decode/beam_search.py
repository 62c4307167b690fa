"""Beam search for Paraformer over the fixed output length given by the CIF token count (docs/spec.md §8).

The decoder scores every position at once, so the acoustic score at position i does not
depend on the hypothesis; what does is the CTC prefix score and the LM score. At position i
every hypothesis is extended by the top-k tokens of am_logp[i] (k = beam_size), each
extension is scored

    total = am + ctc_weight * ctc + lm_weight * lm + length_bonus * num_tokens

and the best ``beam_size`` extensions are kept. With hotwords (``context``, a
:class:`~funasr_lite.decode.context_graph.ContextGraph`) the tokens that extend a hotword match are
candidates too, whatever their acoustic rank, and ``+ context`` joins the total. The parts are
cumulative log-probs:
  am   sum of am_logp[i, y_i] over positions (``</s>`` included when chosen);
  ctc  log P_ctc(output starts with y_1..y_i) while searching; at the last position the
       hypotheses are complete, so it becomes log P_ctc(output == y);
  lm   sum of log P_lm(y_i | <s> y_<i), plus log P_lm(</s> | <s> y) at the end
       (``lm_score_eos``), i.e. the LM's sentence log-probability;
  num_tokens  tokens in the hypothesis, ``</s>`` not counted;
  context  the hotword bonus (context_graph.py: score x the length of each complete hotword; an
       unfinished match counts while searching and is taken back at the end).

Token rules: ``<blank>`` and ``<s>`` are never output tokens, so they are never candidates.
``</s>`` is a candidate at the last position only (a model trained with predictor_bias emits
it there) and is stripped from the returned token ids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch

from funasr_lite.decode.context_graph import ROOT, ContextGraph
from funasr_lite.decode.ctc_prefix_score import CTCPrefixScorer

logger = logging.getLogger(__name__)

BLANK_ID, SOS_ID, EOS_ID = 0, 1, 2
PART_NAMES = ("am", "ctc", "lm", "length_bonus", "context")


@dataclass
class Hypothesis:
    """One result: token ids (no ``</s>``), total score, unweighted per-part scores.

    scores["length_bonus"] is the number of tokens (what ``length_bonus`` multiplies).
    """

    token_ids: List[int]
    score: float
    scores: Dict[str, float] = field(default_factory=dict)


def _allowed_tokens(vocab_size: int, is_last: bool, blank_id: int, sos_id: int, eos_id: Optional[int], device):
    """(V,) bool: the tokens that may fill a position."""
    allowed = torch.ones(vocab_size, dtype=torch.bool, device=device)
    for token in (blank_id, sos_id):
        if token is not None and 0 <= token < vocab_size:
            allowed[token] = False
    if eos_id is not None and 0 <= eos_id < vocab_size and not is_last:
        allowed[eos_id] = False
    return allowed


class _LMState:
    """Running LM scores of the hypotheses, incremental when the LM offers ``score_step``.

    The LM protocol: ``lm.score(prefixes (N, U), lengths (N,)) -> (N, V)`` next-token log-probs
    for prefixes starting with ``<s>``; optionally ``lm.score_step(prefixes, cache) -> (logp, cache)``
    and ``lm.select_cache(cache, rows)`` for all-equal-length prefixes.
    """

    def __init__(self, lm):
        self.lm = lm
        self.incremental = hasattr(lm, "score_step") and hasattr(lm, "select_cache")
        self.cache = None

    def next_logp(self, prefixes: torch.Tensor) -> torch.Tensor:
        """prefixes (N, U) all of length U -> (N, V); keeps the cache for these prefixes."""
        if self.incremental:
            logp, self.cache = self.lm.score_step(prefixes, self.cache)
            return logp
        lengths = torch.full((prefixes.size(0),), prefixes.size(1), dtype=torch.long, device=prefixes.device)
        return self.lm.score(prefixes, lengths)

    def extension_logp(self, prefixes: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """log P(</s> | prefix + c) for prefixes (N, U) × candidates (N, K) -> (N, K); cache unchanged."""
        num_hyps, num_candidates = candidates.shape
        extended = torch.cat([prefixes.repeat_interleave(num_candidates, dim=0), candidates.reshape(-1, 1)], dim=1)
        if self.incremental:
            rows = torch.arange(num_hyps, device=prefixes.device).repeat_interleave(num_candidates)
            logp, _ = self.lm.score_step(extended, self.lm.select_cache(self.cache, rows))
        else:
            lengths = torch.full((extended.size(0),), extended.size(1), dtype=torch.long, device=prefixes.device)
            logp = self.lm.score(extended, lengths)
        return logp.view(num_hyps, num_candidates, -1)

    def select(self, rows: torch.Tensor) -> None:
        if self.incremental and self.cache is not None:
            self.cache = self.lm.select_cache(self.cache, rows)


@torch.no_grad()
def beam_search(
    am_logp: torch.Tensor,
    ctc_logp: Optional[torch.Tensor] = None,
    lm=None,
    beam_size: int = 10,
    ctc_weight: float = 0.0,
    lm_weight: float = 0.0,
    length_bonus: float = 0.0,
    nbest: int = 1,
    blank_id: int = BLANK_ID,
    sos_id: int = SOS_ID,
    eos_id: Optional[int] = EOS_ID,
    lm_score_eos: bool = True,
    context: Optional[ContextGraph] = None,
    context_topk: int = 0,
) -> List[Hypothesis]:
    """N-best token sequences of one utterance, best first.

    Args:
        am_logp: (L, V) decoder log-probs over the L = CIF token-count positions.
        ctc_logp: (T, V) CTC log-probs over the encoder frames (used when ctc_weight > 0).
        lm: a token LM (see :class:`_LMState`) in eval mode (used when lm_weight != 0).
        beam_size: hypotheses kept, and candidates per hypothesis per position.
        ctc_weight, lm_weight: weights of the CTC prefix and LM scores (the AM weighs 1).
        length_bonus: added per output token (``</s>`` not counted); negative = penalty.
        nbest: how many hypotheses to return (at most beam_size).
        blank_id, sos_id, eos_id: special tokens (eos_id None: no ``</s>`` candidate).
        lm_score_eos: add the LM's log P(</s> | y) to complete hypotheses.
        context: hotwords to boost (:class:`ContextGraph`; its score is per hotword token).
        context_topk: > 0: a token that extends a hotword match is searched only where it is among
            the ``context_topk`` best of the decoder at that position (0: wherever).

    L = 0 gives one empty hypothesis with all scores 0.
    """
    if am_logp.dim() != 2:
        raise ValueError(f"am_logp must be (L, V), got shape {tuple(am_logp.shape)}")
    if beam_size < 1 or nbest < 1:
        raise ValueError(f"beam_size and nbest must be >= 1, got {beam_size}, {nbest}")
    num_positions, vocab_size = am_logp.shape
    device = am_logp.device
    use_ctc = ctc_weight != 0.0
    use_lm = lm_weight != 0.0
    if use_ctc and ctc_logp is None:
        raise ValueError("ctc_weight > 0 needs ctc_logp")
    if use_lm and lm is None:
        raise ValueError("lm_weight != 0 needs an lm")

    tokens = torch.full((1, 1), sos_id, dtype=torch.long, device=device)  # (N, 1 + i), <s> first
    parts = {name: torch.zeros(1, dtype=am_logp.dtype, device=device) for name in PART_NAMES}
    ctc_scorer = CTCPrefixScorer(ctc_logp.to(am_logp.dtype), blank_id, eos_id) if use_ctc else None
    ctc_state = ctc_scorer.initial_state() if use_ctc else None
    lm_state = _LMState(lm) if use_lm else None
    weights = {"am": 1.0, "ctc": ctc_weight, "lm": lm_weight, "length_bonus": length_bonus, "context": 1.0}
    context_states = [ROOT]

    for position in range(num_positions):
        is_last = position == num_positions - 1
        allowed = _allowed_tokens(vocab_size, is_last, blank_id, sos_id, eos_id, device)
        num_candidates = min(beam_size, int(allowed.sum()))
        position_logp = am_logp[position].masked_fill(~allowed, float("-inf"))
        candidate_am, candidate_ids = position_logp.topk(num_candidates)
        if context is not None:  # the tokens that extend a hotword match are candidates too
            extra = set().union(*(context.transitions(state).keys() for state in context_states))
            extra = extra.difference(candidate_ids.tolist())
            if context_topk > 0 and extra:
                extra = extra.intersection(position_logp.topk(min(context_topk, vocab_size)).indices.tolist())
            extra = sorted(t for t in extra if 0 <= t < vocab_size and allowed[t])
            if extra:
                extra_ids = torch.tensor(extra, dtype=candidate_ids.dtype, device=device)
                candidate_ids = torch.cat([candidate_ids, extra_ids])
                candidate_am = torch.cat([candidate_am, position_logp[extra_ids]])
                num_candidates = candidate_ids.numel()
        num_hyps = tokens.size(0)
        candidates = candidate_ids.unsqueeze(0).expand(num_hyps, num_candidates)  # (N, K)
        is_eos = candidates == eos_id if eos_id is not None else torch.zeros_like(candidates, dtype=torch.bool)

        new_parts = {
            "am": parts["am"][:, None] + candidate_am[None, :],
            "length_bonus": parts["length_bonus"][:, None] + (~is_eos).to(am_logp.dtype),
            "ctc": parts["ctc"][:, None].expand(num_hyps, num_candidates),
            "lm": parts["lm"][:, None].expand(num_hyps, num_candidates),
            "context": parts["context"][:, None].expand(num_hyps, num_candidates),
        }
        if context is not None:
            next_states, bonus = _context_steps(context, context_states, candidate_ids.tolist())
            new_parts["context"] = new_parts["context"] + torch.tensor(bonus, dtype=am_logp.dtype, device=device)
        if use_ctc:
            ctc_scores = ctc_scorer.score_candidates(ctc_state, candidates)
            new_parts["ctc"] = ctc_scores.sequence_logp if is_last else ctc_scores.prefix_logp
        if use_lm:
            next_logp = lm_state.next_logp(tokens).to(am_logp.dtype)  # (N, V)
            lm_parts = new_parts["lm"] + next_logp.gather(1, candidates)
            if is_last and lm_score_eos and eos_id is not None and not bool(is_eos.all()):
                eos_logp = lm_state.extension_logp(tokens, candidates)[..., eos_id].to(am_logp.dtype)
                lm_parts = lm_parts + eos_logp.masked_fill(is_eos, 0.0)  # a chosen </s> is already scored
            new_parts["lm"] = lm_parts

        total = sum(weights[name] * new_parts[name] for name in PART_NAMES)  # (N, K)
        keep = min(beam_size, total.numel())
        _, flat_index = total.reshape(-1).topk(keep)
        hyp_index = torch.div(flat_index, num_candidates, rounding_mode="floor")
        candidate_index = flat_index % num_candidates

        tokens = torch.cat([tokens[hyp_index], candidates[hyp_index, candidate_index].unsqueeze(1)], dim=1)
        parts = {name: value[hyp_index, candidate_index] for name, value in new_parts.items()}
        if context is not None:
            context_states = [next_states[h][k] for h, k in zip(hyp_index.tolist(), candidate_index.tolist())]
        if use_ctc:
            ctc_state = ctc_scorer.select(ctc_scores, hyp_index, candidate_index)
        if use_lm:
            lm_state.select(hyp_index)

    if context is not None:  # unfinished hotword matches give their bonus back
        parts["context"] = parts["context"] + torch.tensor([context.finish(state) for state in context_states],
                                                           dtype=am_logp.dtype, device=device)
    total = sum(weights[name] * parts[name] for name in PART_NAMES)
    order = torch.argsort(total, descending=True)[:nbest]
    results = []
    for row in order.tolist():
        token_ids = [t for t in tokens[row, 1:].tolist() if t != eos_id]
        results.append(
            Hypothesis(
                token_ids=token_ids,
                score=float(total[row]),
                scores={name: float(parts[name][row]) for name in PART_NAMES},
            )
        )
    return results


def _context_steps(context: ContextGraph, states: List[int], candidates: List[int]):
    """(next states [N][K], bonuses [N][K]) of every hypothesis state x candidate token."""
    next_states, bonuses = [], []
    for state in states:
        table = context.transitions(state)
        otherwise = (ROOT, context.finish(state))  # a token that extends nothing: back to the root
        steps = [table.get(token, otherwise) for token in candidates]
        next_states.append([step[0] for step in steps])
        bonuses.append([step[1] for step in steps])
    return next_states, bonuses


def beam_search_batch(
    am_logp: torch.Tensor,
    token_nums: torch.Tensor,
    ctc_logp: Optional[torch.Tensor] = None,
    ctc_lengths: Optional[torch.Tensor] = None,
    **options,
) -> List[List[Hypothesis]]:
    """:func:`beam_search` for each utterance of a padded batch.

    am_logp (B, L, V) with token_nums (B,); ctc_logp (B, T, V) with ctc_lengths (B,).
    Padding is cut off before searching, so a result does not depend on the batch.
    """
    results = []
    for b in range(am_logp.size(0)):
        utt_ctc = None
        if ctc_logp is not None:
            if ctc_lengths is None:
                raise ValueError("ctc_logp needs ctc_lengths")
            utt_ctc = ctc_logp[b, : int(ctc_lengths[b])]
        results.append(beam_search(am_logp[b, : int(token_nums[b])], utt_ctc, **options))
    return results


__all__ = ["Hypothesis", "beam_search", "beam_search_batch"]
