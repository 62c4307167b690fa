"""UniASR's beam search (FunASR's ``BeamSearchScama``, ``models/uniasr/beam_search.py``), ported
rule for rule so that hypotheses and scores equal FunASR's:

* step i scores every running hypothesis with the SCAMA decoder (its last token, the CIF embedding
  of position i — zero past the last one — and the mask row of position i, the last row past the
  end), adds the hypothesis score (float32), and takes the ``beam_size`` best tokens over the whole
  vocabulary (blank and ``<s>`` included, as FunASR);
* after each hypothesis the candidates are sorted (stably) and cut to ``beam_size``;
* at the last step (``maxlen`` - 1) ``</s>`` is appended to every running hypothesis, its score
  unchanged; hypotheses ending in ``</s>`` leave the beam for the ended list;
* the search stops when FunASR's ``end_detect`` fires (Watanabe et al. eq. 50: the best ended
  hypothesis of each of the last 3 lengths is more than 10 below the best overall) or nothing runs;
* the result is the ended list, best first.

The decoder is any object with ``score_step(last_token, embed, encoder_out, mask_row, caches)``
(:class:`funasr_lite.models.uniasr.decoder.FsmnDecoderSCAMAOpt`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, List, Optional

import torch

END_DETECT_M = 3
END_DETECT_D = math.log(1 * math.exp(-10))


@dataclass
class ScamaHypothesis:
    yseq: List[int]
    score: Any = 0.0  # a 0-d float32 tensor once scored (FunASR keeps the tensor)
    caches: Optional[list] = field(default=None, repr=False)


def end_detect(ended: List[ScamaHypothesis], i: int, m: int = END_DETECT_M, d_end: float = END_DETECT_D) -> bool:
    """FunASR's ``metrics.common.end_detect`` (lengths count <s> and </s>)."""
    if not ended:
        return False
    best = max(float(h.score) for h in ended)
    count = 0
    for offset in range(m):
        same = [float(h.score) for h in ended if len(h.yseq) == i - offset]
        if same and max(same) - best < d_end:
            count += 1
    return count == m


@torch.no_grad()
def scama_beam_search(decoder, encoder_out: torch.Tensor, scama_mask: Optional[torch.Tensor],
                      embeds: Optional[torch.Tensor], beam_size: int, maxlen: int, sos: int, eos: int
                      ) -> List[ScamaHypothesis]:
    """encoder_out (T, D) of one utterance, scama_mask (1, N, T), embeds (1, M, D) -> the ended
    hypotheses, best first (module docstring)."""
    running = [ScamaHypothesis([sos], 0.0, None)]
    ended: List[ScamaHypothesis] = []
    memory = encoder_out[None]
    for i in range(maxlen):
        mask_row = None
        if scama_mask is not None:
            row = min(i, scama_mask.size(1) - 1)
            mask_row = scama_mask[:, row:row + 1, :]
        embed = None
        if embeds is not None:
            embed = embeds[:, i] if i < embeds.size(1) else embeds.new_zeros(embeds.size(0), embeds.size(2))
        best: List[ScamaHypothesis] = []
        for hyp in running:
            last = torch.tensor([hyp.yseq[-1]], device=encoder_out.device)
            log_probs, caches = decoder.score_step(last, embed, memory, mask_row, hyp.caches)
            weighted = torch.zeros(log_probs.size(-1), dtype=encoder_out.dtype, device=encoder_out.device)
            weighted += 1.0 * log_probs[0]
            weighted += hyp.score
            for token in weighted.topk(beam_size)[1].tolist():
                best.append(ScamaHypothesis(hyp.yseq + [token], weighted[token], caches))
            best = sorted(best, key=lambda h: h.score, reverse=True)[: min(len(best), beam_size)]
        if i == maxlen - 1:
            best = [ScamaHypothesis(h.yseq + [eos], h.score, h.caches) for h in best]
        running = []
        for hyp in best:
            (ended if hyp.yseq[-1] == eos else running).append(hyp)
        if end_detect(ended, i) or not running:
            break
    return sorted(ended, key=lambda h: h.score, reverse=True)


__all__ = ["ScamaHypothesis", "end_detect", "scama_beam_search"]
