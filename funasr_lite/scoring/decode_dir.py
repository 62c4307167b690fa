"""Score one decode dir: ``cer.txt``, ``per_utt``, ``errors.txt`` (:mod:`funasr_lite.scoring.cer`) and,
with ground-truth character times, ``timestamp.txt`` (:mod:`funasr_lite.scoring.timestamps`).
"""

from __future__ import annotations

import logging
import os

from funasr_lite.data.datadir import read_kv
from funasr_lite.inference.writers import read_time_stamps, read_tokens
from funasr_lite.scoring.cer import CerResult, compute_cer, error_report_lines, per_utt_lines
from funasr_lite.scoring.timestamps import (
    compute_timestamp_scores,
    correct_char_timing_lines,
    load_char_timestamps,
    timestamp_shift_line,
)
from funasr_lite.utils.fileio import atomic_open

logger = logging.getLogger(__name__)


def score_decode_dir(
    ref_text,
    hyp_text,
    out_dir,
    ref_timestamps=None,
    hyp_timestamps=None,
    hyp_token=None,
) -> CerResult:
    """Score one decode and write cer.txt, per_utt, errors.txt (and timestamp.txt) into out_dir.

    With timestamps, the returned result's ``timestamp_lines`` holds the lines of timestamp.txt.

    Args:
        ref_text: Kaldi ``text`` of the reference (e.g. data/test/text).
        hyp_text: ``1best_recog/text``; empty hypotheses (``utt`` alone) are allowed.
        ref_timestamps: data/<split>/char_timestamps (ground truth); needs ``hyp_timestamps``.
        hyp_timestamps: ``1best_recog/time_stamp``.
        hyp_token: ``1best_recog/token``; default: beside ``hyp_timestamps``.
    """
    if (ref_timestamps is None) != (hyp_timestamps is None):
        raise ValueError("timestamps need both the reference and the hypothesis file")
    result = compute_cer(read_kv(ref_text), read_kv(hyp_text, allow_empty_value=True))
    os.makedirs(out_dir, exist_ok=True)
    with atomic_open(os.path.join(out_dir, "cer.txt")) as f:
        f.write(result.cer_line() + "\n")
    with atomic_open(os.path.join(out_dir, "per_utt")) as f:
        for utt in result.utts:
            f.write("\n".join(per_utt_lines(utt)) + "\n")
    with atomic_open(os.path.join(out_dir, "errors.txt")) as f:
        f.write("\n".join(error_report_lines(result)) + "\n")

    timestamp_report = os.path.join(out_dir, "timestamp.txt")
    if ref_timestamps is None and os.path.exists(timestamp_report):
        os.unlink(timestamp_report)  # from an earlier scoring; would not match this one
    if ref_timestamps is not None:
        if hyp_token is None:
            hyp_token = os.path.join(os.path.dirname(os.fspath(hyp_timestamps)), "token")
        ref_times = load_char_timestamps(ref_timestamps)
        tokens, times = read_tokens(hyp_token), read_time_stamps(hyp_timestamps)
        scores = compute_timestamp_scores(result, ref_times, tokens, times)
        result.timestamp_lines = ([timestamp_shift_line(scores.shift, len(scores.skipped))]
                                  + correct_char_timing_lines(scores.timing))
        with atomic_open(timestamp_report) as f:
            f.write("\n".join(result.timestamp_lines) + "\n")
    return result

