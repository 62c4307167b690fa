"""egs/aishell1/local/seaco_head_accuracy.py on a random-weight SeACo dir: the counts add up, the
shares are the counts' ratios; seeded, a second run is the same."""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for sub in (("egs", "aishell1", "local"), ("tests", "inference"), ("tests",)):
    sys.path.insert(0, os.path.join(REPO, *sub))

from seaco_head_accuracy import measure  # noqa: E402
from test_hotword_model_dirs import write_seaco_dir  # noqa: E402
from test_infer import TOKENS, write_corpus  # noqa: E402

from funasr_lite.api import SpeechRecognizer  # noqa: E402


def test_counts_and_shares(tmp_path):
    seconds = {f"u{i}": 1.5 + 0.3 * i for i in range(10)}
    data_dir, waves = write_corpus(str(tmp_path / "corpus"), seconds, with_feats=False)
    words = TOKENS[3:-1]
    with open(os.path.join(data_dir, "text"), "w", encoding="utf-8") as f:
        for i, key in enumerate(sorted(waves)):
            f.write(f"{key} {''.join(words[(i + j) % len(words)] for j in range(3 + i % 4))}\n")
    asr = SpeechRecognizer.from_model_dir(write_seaco_dir(str(tmp_path / "seaco"), waves.values(), seed=1))
    result = measure(asr, data_dir, max_utts=10, seed=0)
    assert result["utterances"] == 10
    total = sum(3 + i % 4 for i in range(10))
    assert result["hotword_positions"] + result["no_bias_positions"] == total
    assert result["hotword_positions"] > 0
    assert result["acc_hotword"] == result["head_right"] / result["hotword_positions"]
    assert result["acc_no_bias"] == result["no_bias_right"] / result["no_bias_positions"]
    assert 0 <= result["head_right"] + result["head_no_bias"] <= result["hotword_positions"]
    assert measure(asr, data_dir, max_utts=10, seed=0) == result  # seeded: the same spans again
