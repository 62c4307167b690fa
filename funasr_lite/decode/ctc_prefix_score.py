"""CTC prefix scores for beam search, vectorised over hypotheses × candidate tokens.

For a prefix g and frames 1..t, the forward variables are (Watanabe et al. 2017, Alg. 2)
    r_t^n(g): probability that x_1..x_t collapse to g with frame t emitting g's last token,
    r_t^b(g): the same with frame t emitting blank.
Extending g by token c (h = g + c), with phi_t = r_t^b(g) + [last(g) != c] r_t^n(g):
    r_t^n(h) = (r_{t-1}^n(h) + phi_{t-1}) p_t(c),   r_t^b(h) = (r_{t-1}^b(h) + r_{t-1}^n(h)) p_t(blank)
    prefix probability  psi(h) = sum_t phi_{t-1} p_t(c)   = P(the output starts with h)
    sequence probability       = r_T^n(h) + r_T^b(h)      = P(the output is exactly h)
A row t = 0 stands for "no frame yet": only the empty prefix has mass there (r_0^b = 1).
Everything is in the log domain; the only Python loop is over frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch


@dataclass
class CTCPrefixState:
    """Forward variables of N hypotheses.

    forward_logp: (T+1, 2, N) log r_t^n (index 0) and log r_t^b (index 1), t = 0..T.
    prefix_logp: (N,) log psi of each hypothesis (0 for the empty prefix).
    last_token: (N,) last token of each hypothesis, -1 for the empty prefix.
    """

    forward_logp: torch.Tensor
    prefix_logp: torch.Tensor
    last_token: torch.Tensor

    @property
    def num_hyps(self) -> int:
        return self.prefix_logp.size(0)


@dataclass
class CTCCandidateScores:
    """Scores of every hypothesis × candidate extension h = g + c.

    prefix_logp: (N, K) log psi(h), the CTC prefix score.
    sequence_logp: (N, K) log P(output == h), for hypotheses that end here.
    forward_logp: (T+1, 2, N, K) the forward variables of h.
    candidates: (N, K) the candidate tokens.
    """

    prefix_logp: torch.Tensor
    sequence_logp: torch.Tensor
    forward_logp: torch.Tensor
    candidates: torch.Tensor


class CTCPrefixScorer:
    """CTC prefix scoring over one utterance's CTC log-probs.

    Args:
        ctc_logp: (T, V) log-softmax CTC output of one utterance (no padding frames).
        blank_id: the CTC blank.
        eos_id: ``</s>``; a candidate equal to it ends the hypothesis, so its prefix score is
            the full-sequence score of the hypothesis itself (None: no such token).
    """

    def __init__(self, ctc_logp: torch.Tensor, blank_id: int = 0, eos_id: Optional[int] = 2):
        if ctc_logp.dim() != 2:
            raise ValueError(f"ctc_logp must be (T, V), got shape {tuple(ctc_logp.shape)}")
        self.ctc_logp = ctc_logp
        self.blank_id = blank_id
        self.eos_id = eos_id
        self.num_frames = ctc_logp.size(0)

    def initial_state(self) -> CTCPrefixState:
        """State of the single empty hypothesis (N = 1)."""
        log_zero = torch.tensor(float("-inf"), dtype=self.ctc_logp.dtype, device=self.ctc_logp.device)
        blank_run = torch.cat([log_zero.new_zeros(1), torch.cumsum(self.ctc_logp[:, self.blank_id], dim=0)])
        forward_logp = torch.stack([torch.full_like(blank_run, float("-inf")), blank_run], dim=0)  # (2, T+1)
        return CTCPrefixState(
            forward_logp=forward_logp.t().unsqueeze(-1),  # (T+1, 2, 1)
            prefix_logp=log_zero.new_zeros(1),
            last_token=torch.full((1,), -1, dtype=torch.long, device=self.ctc_logp.device),
        )

    def frame_token_logp(self, candidates: torch.Tensor) -> torch.Tensor:
        """candidates (N, K) -> (T, N, K) their per-frame log-probs (a batched subclass looks up
        each hypothesis' own utterance)."""
        return self.ctc_logp[:, candidates]

    def frame_blank_logp(self) -> torch.Tensor:
        """(T,) per-frame blank log-probs, or anything broadcasting per frame against (N, K)."""
        return self.ctc_logp[:, self.blank_id]

    def sequence_logp(self, state: CTCPrefixState) -> torch.Tensor:
        """(N,) log P(output == g) of each hypothesis g."""
        return torch.logaddexp(state.forward_logp[-1, 0], state.forward_logp[-1, 1])

    def score_candidates(self, state: CTCPrefixState, candidates: torch.Tensor) -> CTCCandidateScores:
        """Score candidates (N, K) token ids (never blank) appended to each of the N hypotheses."""
        if candidates.dim() != 2 or candidates.size(0) != state.num_hyps:
            raise ValueError(f"candidates must be (N={state.num_hyps}, K), got {tuple(candidates.shape)}")
        if (candidates == self.blank_id).any():
            raise ValueError("blank cannot extend a CTC prefix")
        num_hyps, num_candidates = candidates.shape
        prev_nonblank = state.forward_logp[:, 0].unsqueeze(-1)  # (T+1, N, 1)
        prev_blank = state.forward_logp[:, 1].unsqueeze(-1)
        # A repeated token needs a blank in between: drop r^n(g) from phi where c == last(g).
        repeats = (candidates == state.last_token.unsqueeze(-1)).unsqueeze(0)  # (1, N, K)
        phi = torch.logaddexp(prev_blank, prev_nonblank.masked_fill(repeats, float("-inf")))  # (T+1, N, K)
        token_logp = self.frame_token_logp(candidates)  # (T, N, K)
        blank_logp = self.frame_blank_logp()  # (T,)

        nonblank = [torch.full((num_hyps, num_candidates), float("-inf"), dtype=phi.dtype, device=phi.device)]
        blank = [nonblank[0]]
        for t in range(1, self.num_frames + 1):
            nonblank.append(torch.logaddexp(nonblank[t - 1], phi[t - 1]) + token_logp[t - 1])
            blank.append(torch.logaddexp(blank[t - 1], nonblank[t - 1]) + blank_logp[t - 1])
        forward_logp = torch.stack([torch.stack(nonblank), torch.stack(blank)], dim=1)  # (T+1, 2, N, K)

        prefix_logp = torch.logsumexp(phi[:-1] + token_logp, dim=0)  # (N, K)
        sequence_logp = torch.logaddexp(forward_logp[-1, 0], forward_logp[-1, 1])
        if self.eos_id is not None:
            # g + </s> is g ended: both scores become P(output == g).
            ends = candidates == self.eos_id
            ended_logp = self.sequence_logp(state).unsqueeze(-1).expand_as(prefix_logp)
            prefix_logp = torch.where(ends, ended_logp, prefix_logp)
            sequence_logp = torch.where(ends, ended_logp, sequence_logp)
        return CTCCandidateScores(prefix_logp, sequence_logp, forward_logp, candidates)

    @staticmethod
    def select(scores: CTCCandidateScores, hyp_index: torch.Tensor, candidate_index: torch.Tensor) -> CTCPrefixState:
        """The state of the chosen extensions: hyp_index, candidate_index (M,) -> N' = M hypotheses."""
        return CTCPrefixState(
            forward_logp=scores.forward_logp[:, :, hyp_index, candidate_index],
            prefix_logp=scores.prefix_logp[hyp_index, candidate_index],
            last_token=scores.candidates[hyp_index, candidate_index],
        )


def score_sequence_prefixes(
    ctc_logp: torch.Tensor, token_ids, blank_id: int = 0
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Prefix and full-sequence log-probs of one token sequence (for checks and rescoring).

    Returns (log psi of every prefix y_1..y_i, i = 1..len) (len,) and log P(output == y) ().
    """
    scorer = CTCPrefixScorer(ctc_logp, blank_id=blank_id, eos_id=None)
    state = scorer.initial_state()
    prefix_scores = []
    for token in token_ids:
        candidate = torch.tensor([[int(token)]], device=ctc_logp.device)
        scores = scorer.score_candidates(state, candidate)
        prefix_scores.append(scores.prefix_logp[0, 0])
        state = scorer.select(scores, torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long))
    prefix = torch.stack(prefix_scores) if prefix_scores else ctc_logp.new_zeros(0)
    return prefix, scorer.sequence_logp(state)[0]
