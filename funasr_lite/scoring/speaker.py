"""Speaker-verification scores: cosine scores of a trial list, EER and minDCF.

Error rates at a threshold t (a trial is accepted when its score >= t):
  P_miss(t) = target trials scored below t / target trials
  P_fa(t)   = nontarget trials scored t or above / nontarget trials
taken at every distinct score and at +inf (reject all), so P_miss rises from 0 to 1 and P_fa
falls from 1 to 0.

EER: where the two curves meet. At the first threshold t_i where P_miss >= P_fa, the EER is where
the straight segments from t_{i-1} to t_i cross (exactly P_miss(t_i) when they are equal there);
the threshold reported is t_i.

minDCF (NIST SRE's detection cost, normalised as in VoxSRC and Kaldi's compute_min_dcf.py):
  DCF(t) = (C_miss P_miss(t) p_target + C_fa P_fa(t) (1 - p_target)) / min(C_miss p_target, C_fa (1 - p_target))
minimised over the thresholds; p_target 0.01, C_miss = C_fa = 1 by default. Accepting or
rejecting everything costs at most 1, so minDCF <= 1.

Outputs of :func:`write_speaker_results` (a scoring dir): ``scores`` (``enroll test score label``
per trial, in the trial list's order), ``eer.txt`` (for people) and ``eer.json``.
"""

from __future__ import annotations

import json
import math
import os
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from funasr_lite.data.speaker_trials import Trial
from funasr_lite.utils.fileio import atomic_open

DEFAULT_P_TARGET = 0.01


def error_rates(scores: Sequence[float], labels: Sequence[int]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (thresholds ascending, ending with +inf; P_miss; P_fa) at each (module docstring)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D of one length, got {scores.shape} and {labels.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError("labels must be 0 (nontarget) or 1 (target)")
    num_target, num_nontarget = int((labels == 1).sum()), int((labels == 0).sum())
    if not num_target or not num_nontarget:
        raise ValueError(f"need target and nontarget trials, got {num_target} and {num_nontarget}")
    order = np.argsort(scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    thresholds, below = np.unique(sorted_scores, return_index=True)  # below: trials scored under each
    below = np.append(below, len(scores))
    thresholds = np.append(thresholds, np.inf)
    targets_below = np.concatenate([[0], np.cumsum(sorted_labels == 1)])[below]
    nontargets_below = np.concatenate([[0], np.cumsum(sorted_labels == 0)])[below]
    return thresholds, targets_below / num_target, (num_nontarget - nontargets_below) / num_nontarget


def compute_eer(scores: Sequence[float], labels: Sequence[int]) -> Tuple[float, float]:
    """-> (EER as a fraction, threshold) (module docstring)."""
    thresholds, p_miss, p_fa = error_rates(scores, labels)
    gap = p_fa - p_miss  # starts at 1, ends at -1
    i = int(np.argmax(gap <= 0))
    if gap[i] == 0 or i == 0:
        return float(p_miss[i]), float(thresholds[i])
    alpha = gap[i - 1] / (gap[i - 1] - gap[i])
    return float(p_miss[i - 1] + alpha * (p_miss[i] - p_miss[i - 1])), float(thresholds[i])


def compute_min_dcf(scores: Sequence[float], labels: Sequence[int], p_target: float = DEFAULT_P_TARGET,
                    c_miss: float = 1.0, c_fa: float = 1.0) -> Tuple[float, float]:
    """-> (normalised minDCF, its threshold: the lowest one reaching it) (module docstring)."""
    if not 0.0 < p_target < 1.0:
        raise ValueError(f"p_target must be in (0, 1), got {p_target}")
    thresholds, p_miss, p_fa = error_rates(scores, labels)
    cost = (c_miss * p_miss * p_target + c_fa * p_fa * (1.0 - p_target)) / min(c_miss * p_target,
                                                                              c_fa * (1.0 - p_target))
    i = int(np.argmin(cost))
    return float(cost[i]), float(thresholds[i])


def cosine_trial_scores(trials: Sequence[Trial], embeddings: Mapping[str, np.ndarray]) -> List[float]:
    """The cosine similarity (float64) of each trial's two embeddings; KeyError listing the
    utterances without one."""
    missing = sorted({utt for _, enroll, test in trials for utt in (enroll, test) if utt not in embeddings})
    if missing:
        more = f" ... ({len(missing) - 5} more)" if len(missing) > 5 else ""
        raise KeyError(f"{len(missing)} trial utterance(s) have no embedding: {', '.join(missing[:5])}{more}")
    utts = sorted({utt for _, enroll, test in trials for utt in (enroll, test)})
    index = {utt: i for i, utt in enumerate(utts)}
    matrix = np.stack([np.asarray(embeddings[utt], dtype=np.float64).reshape(-1) for utt in utts])
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-8)
    enroll = matrix[[index[e] for _, e, _ in trials]]
    test = matrix[[index[t] for _, _, t in trials]]
    return [float(v) for v in np.einsum("ij,ij->i", enroll, test)]


def verification_metrics(scores: Sequence[float], labels: Sequence[int],
                         p_target: float = DEFAULT_P_TARGET) -> Dict[str, float]:
    """{"eer", "eer_threshold", "min_dcf", "min_dcf_threshold", "p_target", "trials", "target_trials",
    "nontarget_trials"} of one scored trial list."""
    eer, eer_threshold = compute_eer(scores, labels)
    min_dcf, dcf_threshold = compute_min_dcf(scores, labels, p_target)
    labels = list(labels)
    return {"eer": eer, "eer_threshold": eer_threshold, "min_dcf": min_dcf, "min_dcf_threshold": dcf_threshold,
            "p_target": p_target, "trials": len(labels), "target_trials": sum(1 for v in labels if v == 1),
            "nontarget_trials": sum(1 for v in labels if v == 0)}


def write_speaker_results(out_dir, trials: Sequence[Trial], scores: Sequence[float],
                          metrics: Mapping[str, float], description: str = "") -> None:
    """``scores``, ``eer.txt`` and ``eer.json`` in ``out_dir`` (module docstring), each atomically."""
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    with atomic_open(os.path.join(out_dir, "scores")) as f:
        f.writelines(f"{enroll} {test} {score:.6f} {label}\n" for (label, enroll, test), score in zip(trials, scores))
    with atomic_open(os.path.join(out_dir, "eer.json")) as f:
        json.dump({**metrics, "description": description}, f, indent=1, sort_keys=True)
        f.write("\n")
    threshold = metrics["eer_threshold"]
    shown = f"{threshold:.4f}" if math.isfinite(threshold) else "inf"
    with atomic_open(os.path.join(out_dir, "eer.txt")) as f:
        if description:
            f.write(f"# {description}\n")
        f.write(f"EER {100 * metrics['eer']:.2f}% (threshold {shown})\n")
        f.write(f"minDCF(p_target={metrics['p_target']:g}) {metrics['min_dcf']:.4f} "
                f"(threshold {metrics['min_dcf_threshold']:.4f})\n")
        f.write(f"trials {metrics['trials']} ({metrics['target_trials']} target, "
                f"{metrics['nontarget_trials']} nontarget)\n")


__all__ = ["DEFAULT_P_TARGET", "compute_eer", "compute_min_dcf", "cosine_trial_scores", "error_rates",
           "verification_metrics", "write_speaker_results"]
