"""EER and minDCF (funasr_lite.scoring.speaker) on trial lists worked out by hand."""

import json

import numpy as np
import pytest

from funasr_lite.scoring.speaker import (compute_eer, compute_min_dcf, cosine_trial_scores, error_rates,
                                         verification_metrics, write_speaker_results)


def _split(targets, nontargets):
    return list(targets) + list(nontargets), [1] * len(targets) + [0] * len(nontargets)


def test_error_rates_by_hand():
    scores, labels = _split([0.9, 0.8, 0.3], [0.7, 0.2, 0.1])
    thresholds, p_miss, p_fa = error_rates(scores, labels)
    assert list(thresholds) == [0.1, 0.2, 0.3, 0.7, 0.8, 0.9, np.inf]
    assert np.allclose(p_miss, [0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    assert np.allclose(p_fa, [1, 2 / 3, 1 / 3, 1 / 3, 0, 0, 0])


def test_eer_where_the_curves_meet_at_a_threshold():
    # at 0.7: 0.3 of the targets is missed (1/3), 0.7 of the nontargets accepted (1/3)
    assert compute_eer(*_split([0.9, 0.8, 0.3], [0.7, 0.2, 0.1])) == pytest.approx((1 / 3, 0.7))


def test_eer_interpolated_between_thresholds():
    # A target and a nontarget tied at 0.5: from threshold 0.5 (P_miss 0, P_fa 1/3) to 0.9 (P_miss 1/2,
    # P_fa 0) both curves move at once. The segments cross at alpha = (1/3) / (1/3 + 1/2) = 0.4:
    # P_miss = 0.4 * 1/2 = 0.2 = P_fa = 1/3 - 0.4 * 1/3.
    assert compute_eer(*_split([0.9, 0.5], [0.5, 0.1, 0.05])) == pytest.approx((0.2, 0.9))
    # Without ties one curve is flat where they cross: the EER is its value (P_miss 1/3 from 0.5 to 0.8).
    assert compute_eer(*_split([0.9, 0.8, 0.4], [0.5, 0.1])) == pytest.approx((1 / 3, 0.8))


def test_eer_of_separated_reversed_and_tied_scores():
    assert compute_eer(*_split([0.9, 0.8], [0.1, 0.2]))[0] == 0.0
    assert compute_eer(*_split([0.1, 0.2], [0.9, 0.8]))[0] == 1.0
    assert compute_eer(*_split([0.5, 0.5], [0.5, 0.5]))[0] == pytest.approx(0.5)
    # the order of the trials does not matter
    scores, labels = _split([0.9, 0.8, 0.3], [0.7, 0.2, 0.1])
    order = [3, 0, 5, 1, 4, 2]
    assert compute_eer([scores[i] for i in order], [labels[i] for i in order]) == pytest.approx((1 / 3, 0.7))


def test_min_dcf_by_hand():
    scores, labels = _split([0.9, 0.8, 0.3], [0.7, 0.2, 0.1])
    # p_target 0.01: DCF = (0.01 P_miss + 0.99 P_fa) / 0.01; best at 0.8 (P_miss 1/3, P_fa 0): 1/3
    assert compute_min_dcf(scores, labels, 0.01) == pytest.approx((1 / 3, 0.8))
    # p_target 0.5: DCF = P_miss + P_fa; 1/3 first reached at 0.3
    assert compute_min_dcf(scores, labels, 0.5) == pytest.approx((1 / 3, 0.3))
    # p_target 0.01, one nontarget above every target: accepting it costs 99 x its rate, so reject all: 1
    assert compute_min_dcf(*_split([0.6, 0.5], [0.9, 0.1]), 0.01) == pytest.approx((1.0, np.inf))


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="target and nontarget"):
        compute_eer([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="labels"):
        compute_eer([0.1, 0.2], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        compute_eer([0.1, float("nan")], [1, 0])
    with pytest.raises(ValueError, match="p_target"):
        compute_min_dcf([0.1, 0.2], [1, 0], 0.0)


def test_cosine_scores_and_the_written_results(tmp_path):
    embeddings = {"a": np.array([1.0, 0.0]), "b": np.array([2.0, 2.0]), "c": np.array([0.0, -3.0])}
    trials = [(1, "a", "b"), (0, "a", "c"), (0, "b", "c")]
    scores = cosine_trial_scores(trials, embeddings)
    assert scores == pytest.approx([np.sqrt(0.5), 0.0, -np.sqrt(0.5)])
    with pytest.raises(KeyError, match="1 trial utterance.*: d"):
        cosine_trial_scores([(1, "a", "d")], embeddings)
    metrics = verification_metrics(scores, [t[0] for t in trials])
    assert metrics["eer"] == 0.0 and metrics["trials"] == 3 and metrics["target_trials"] == 1
    write_speaker_results(tmp_path, trials, scores, metrics, "toy")
    lines = (tmp_path / "scores").read_text().splitlines()
    assert lines[0].split() == ["a", "b", f"{np.sqrt(0.5):.6f}", "1"] and len(lines) == 3
    text = (tmp_path / "eer.txt").read_text()
    assert "EER 0.00%" in text and "minDCF(p_target=0.01) 0.0000" in text and "trials 3 (1 target, 2 nontarget)" in text
    assert json.loads((tmp_path / "eer.json").read_text())["eer"] == 0.0
