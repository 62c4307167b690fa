"""CTC forced alignment (Viterbi) of a known token sequence, and token timestamps from it.

The attention decoder of an AED model has no notion of time, so its hypotheses get timestamps
from the model's CTC head: the hypothesis is aligned to the CTC log-probs of its utterance
(the best path through ``<blank> y1 <blank> y2 ... yL <blank>``, repeated tokens separated by a
blank), and token i spans the frames its state holds on that path:

    [first_frame * frame_ms, (last_frame + 1) * frame_ms]     (integer milliseconds)

CTC posteriors are peaky, so spans are short (often one encoder frame) and the silence between
tokens is blank. A hypothesis that no CTC path can produce (more tokens, plus blanks between
repeats, than frames: an attention hypothesis the CTC head disagrees with) is aligned with the
blank between repeated tokens made optional (``strict=False``), which needs only one frame per
token; :func:`ctc_token_timestamps` does that with a warning, and returns None only when the
hypothesis has more tokens than frames.
"""

from __future__ import annotations

import logging
from typing import List, Optional, Sequence, Tuple

import torch

logger = logging.getLogger(__name__)


def ctc_forced_align(ctc_logp: torch.Tensor, token_ids: Sequence[int], blank_id: int = 0,
                     strict: bool = True) -> Optional[List[Tuple[int, int]]]:
    """ctc_logp (T, V) of one utterance, token_ids (L,) -> per token (first_frame, last_frame)
    on the Viterbi path, or None when no path exists. L = 0 -> [].

    strict=False: a repeated token may follow its twin without a blank in between (not a CTC
    path; each token still holds at least one frame of its own)."""
    if ctc_logp.dim() != 2:
        raise ValueError(f"ctc_logp must be (T, V), got shape {tuple(ctc_logp.shape)}")
    tokens = [int(t) for t in token_ids]
    if not tokens:
        return []
    if blank_id in tokens:
        raise ValueError("the blank cannot be aligned as a token")
    num_frames = ctc_logp.size(0)
    logp = ctc_logp.detach().float().cpu()
    states = torch.full((2 * len(tokens) + 1,), blank_id, dtype=torch.long)
    states[1::2] = torch.tensor(tokens)
    num_states = states.numel()
    # a token state may also be entered from two states back (skipping the blank) unless it repeats
    can_skip = torch.zeros(num_states, dtype=torch.bool)
    can_skip[3::2] = (states[3::2] != states[1:-2:2]) if strict else True
    neg_inf = float("-inf")
    score = torch.full((num_states,), neg_inf)
    score[0] = logp[0, blank_id]
    score[1] = logp[0, tokens[0]]
    back = torch.zeros(num_frames, num_states, dtype=torch.long)  # 0 stay, 1 from s-1, 2 from s-2
    for t in range(1, num_frames):
        from_prev = torch.cat([torch.tensor([neg_inf]), score[:-1]])
        from_skip = torch.cat([torch.tensor([neg_inf, neg_inf]), score[:-2]]).masked_fill(~can_skip, neg_inf)
        options = torch.stack([score, from_prev, from_skip])  # (3, S)
        best, back[t] = options.max(dim=0)
        score = best + logp[t, states]
    end_state = num_states - 1 if score[-1] >= score[-2] else num_states - 2
    if score[end_state] == neg_inf:
        return None
    path = [0] * num_frames
    state = end_state
    for t in range(num_frames - 1, -1, -1):
        path[t] = state
        state -= int(back[t, state])
    spans: List[List[int]] = [[-1, -1] for _ in tokens]
    for t, state in enumerate(path):
        if state % 2 == 1:
            span = spans[state // 2]
            if span[0] < 0:
                span[0] = t
            span[1] = t
    return [(first, last) for first, last in spans]


def ctc_token_timestamps(
    ctc_logp: torch.Tensor, token_ids: Sequence[int], frame_ms: float, blank_id: int = 0
) -> Optional[List[List[int]]]:
    """[[start_ms, end_ms], ...] per token from :func:`ctc_forced_align` (strict, else relaxed
    with a warning); None when the hypothesis has more tokens than frames."""
    spans = ctc_forced_align(ctc_logp, token_ids, blank_id)
    if spans is None:
        spans = ctc_forced_align(ctc_logp, token_ids, blank_id, strict=False)
        if spans is None:
            return None
        logger.warning("%d tokens have no CTC path in %d frames: aligned without blanks between repeats",
                       len(token_ids), ctc_logp.size(0))
    return [[int(first * frame_ms), int((last + 1) * frame_ms)] for first, last in spans]


__all__ = ["ctc_forced_align", "ctc_token_timestamps"]
