"""Per-class punctuation scores against hand-counted values."""

import pytest

from funasr_lite.scoring.punctuation import punctuation_score_lines, punctuation_scores


def test_per_class_counts_and_f1():
    ref = ["", "，", "", "。", "、", "", "？"]
    hyp = ["，", "，", "", "，", "", "、", "。"]
    scores = punctuation_scores([(ref, hyp), (["_", "。"], ["_", "。"])])
    comma, period, question, pause = scores["，"], scores["。"], scores["？"], scores["、"]
    assert (comma["tp"], comma["fp"], comma["fn"]) == (1, 2, 0)
    assert comma["precision"] == pytest.approx(1 / 3) and comma["recall"] == 1.0 and comma["f1"] == pytest.approx(0.5)
    assert (period["tp"], period["fp"], period["fn"]) == (1, 1, 1) and period["f1"] == pytest.approx(0.5)
    assert (question["tp"], question["fp"], question["fn"], question["f1"]) == (0, 0, 1, 0.0)
    assert (pause["tp"], pause["fp"], pause["fn"]) == (0, 1, 1)
    overall = scores["overall"]
    assert (overall["tp"], overall["fp"], overall["fn"]) == (2, 4, 3)
    assert overall["f1"] == pytest.approx(2 * (2 / 6) * (2 / 5) / (2 / 6 + 2 / 5))
    boundary = scores["any_mark"]  # positions only: ref marks at 1,3,4,6 (+1); hyp at 0,1,3,5,6 (+1)
    assert (boundary["tp"], boundary["fp"], boundary["fn"]) == (4, 2, 1)
    assert len(punctuation_score_lines(scores)) == 7


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="text 0: 2 reference marks but 1"):
        punctuation_scores([(["", "。"], ["。"])])
