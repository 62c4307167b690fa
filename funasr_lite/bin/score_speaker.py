"""Score a speaker trial list with a speaker model dir: embeddings, cosine scores, EER and minDCF.

    python -m funasr_lite.bin.score_speaker --model_dir exp/xvector/model_dir --data_dir data/sv/eval \\
        --trials data/sv/eval/trials --out_dir exp/xvector/score_eval

Every utterance of the data dirs is embedded with ``funasr_lite.SpeakerVerifier`` (stored features
of feats.scp when the dir has them, else its wav.scp audio); each trial is scored by the cosine of
its two embeddings. ``--out_dir`` gets ``scores`` (enroll test score label), ``eer.txt`` and
``eer.json`` (funasr_lite.scoring.speaker: EER, minDCF at p_target).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from funasr_lite.api import AudioInputError, SpeakerVerifier
from funasr_lite.data.datadir import read_kv
from funasr_lite.data.speaker_trials import read_trials
from funasr_lite.inference.model_dir import ModelDirError
from funasr_lite.scoring.speaker import (DEFAULT_P_TARGET, cosine_trial_scores, verification_metrics,
                                         write_speaker_results)
from funasr_lite.utils.cli import make_parser
from funasr_lite.utils.log import setup_logging

logger = logging.getLogger("score_speaker")


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("funasr_lite.bin.score_speaker", __doc__)
    parser.add_argument("--model_dir", required=True, help="speaker model dir (SpeakerVerifier loads it)")
    parser.add_argument("--checkpoint", default=None, help="weights file in the model dir (default: its own)")
    parser.add_argument("--data_dir", action="append", required=True,
                        help="data dir of the trial utterances (repeat for several)")
    parser.add_argument("--trials", required=True, help="trial list: label enroll_utt test_utt per line")
    parser.add_argument("--out_dir", required=True, help="where scores, eer.txt and eer.json go")
    parser.add_argument("--p_target", type=float, default=DEFAULT_P_TARGET, help="target prior of minDCF")
    parser.add_argument("--device", default="cpu", help="torch device of the model")
    parser.add_argument("--num_threads", type=int, default=0, help="torch threads (0: torch's default)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging()
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    try:
        trials = read_trials(args.trials)
        verifier = SpeakerVerifier(args.model_dir, checkpoint=args.checkpoint, device=args.device)
        embeddings: Dict[str, np.ndarray] = {}
        for data_dir in args.data_dir:
            listing = "feats.scp" if os.path.isfile(os.path.join(data_dir, "feats.scp")) else "wav.scp"
            utts = list(read_kv(os.path.join(data_dir, listing)))
            embeddings.update(zip(utts, verifier.embed(data_dir)))
        scores = cosine_trial_scores(trials, embeddings)
        metrics = verification_metrics(scores, [label for label, _, _ in trials], args.p_target)
    except (ValueError, KeyError, OSError, ModelDirError, AudioInputError) as e:
        parser.exit(1, f"{parser.prog}: error: {e}\n")
    weights = os.path.basename(verifier.loaded.files.weights)
    description = f"{args.model_dir} ({weights}) on {' + '.join(args.data_dir)}, trials {args.trials}"
    write_speaker_results(args.out_dir, trials, scores, metrics, description)
    logger.info("%s: EER %.2f%%, minDCF(p_target=%g) %.4f over %d trials", args.out_dir, 100 * metrics["eer"],
                args.p_target, metrics["min_dcf"], metrics["trials"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
