"""Timestamp scoring against ground truth (hand examples): %AAS over correct and substituted pairs,
%AAS_COR and %BIAS_COR over correctly recognised characters, all on the CER alignment."""

import logging
import math

import numpy as np
import pytest

from funasr_lite.scoring.timestamps import CorrectCharTiming, TimestampShift, compute_timestamp_scores, correct_char_timing, correct_char_timing_lines, timestamp_shift, timestamp_shift_line
from funasr_lite.scoring.cer import compute_cer

REF = [("a", 100, 200), ("b", 250, 400), ("c", 450, 600), ("d", 700, 800)]
# CER alignment of a b c d vs a x y c d: a C, x inserted, b -> y substituted, c C, d C.
HYP = [("a", 90, 240), ("x", 240, 300), ("y", 300, 480), ("c", 480, 650), ("d", 650, 780)]
# hyp - ref of the correct characters:  a (-10, +40), c (+30, +50), d (-50, -20)


def test_insertion_and_substitution_are_left_out():
    timing = correct_char_timing(REF, HYP)
    assert (timing.num_correct, timing.num_ref_chars) == (3, 4)
    assert timing.usable_percent == pytest.approx(75.0)
    assert timing.mean_start_bias_ms == pytest.approx((-10 + 30 - 50) / 3)  # -10
    assert timing.mean_end_bias_ms == pytest.approx((40 + 50 - 20) / 3)  # +23.33
    assert timing.mean_abs_start_ms == pytest.approx((10 + 30 + 50) / 3)  # 30
    assert timing.mean_abs_end_ms == pytest.approx((40 + 50 + 20) / 3)  # 36.67
    assert correct_char_timing_lines(timing) == [
        "%AAS_COR start 30.00 ms end 36.67 ms [ 3 correct chars: 75.00% of 4 ref chars ]",
        "%BIAS_COR start -10.00 ms end +23.33 ms [ mean hyp - ref over the same 3 chars ]",
    ]


def test_same_correct_characters_as_the_aas_line():
    # %AAS also counts the substitution b -> y (start +50, end +80): (10+50+30+50)/4, (40+80+50+20)/4
    shift = timestamp_shift(REF, HYP)
    assert (shift.num_correct, shift.num_substituted, shift.num_deleted, shift.num_inserted) == (3, 1, 0, 1)
    assert shift.mean_start_shift_ms == pytest.approx(35.0)
    assert shift.mean_end_shift_ms == pytest.approx(47.5)
    assert correct_char_timing(REF, HYP).num_correct == shift.num_correct


def test_deletions_and_missing_hypotheses_only_lower_the_usable_share():
    refs = {
        "u1": REF,
        "u2": [("e", 0, 100), ("f", 100, 200)],  # f deleted
        "u3": [("g", 0, 100), ("h", 100, 200), ("i", 200, 300)],  # no hypothesis at all
    }
    tokens = {"u1": [unit[0] for unit in HYP], "u2": ["e"]}
    times = {"u1": [[s, e] for _, s, e in HYP], "u2": [[20, 170]]}  # e: (+20, +70)
    result = compute_cer({k: "".join(u[0] for u in v) for k, v in refs.items()},
                         {k: "".join(v) for k, v in tokens.items()})
    scores = compute_timestamp_scores(result, refs, tokens, times)
    timing = scores.timing
    assert (timing.num_correct, timing.num_ref_chars) == (4, 9)
    assert timing.usable_percent == pytest.approx(100 * 4 / 9)  # 44.44
    assert timing.mean_start_bias_ms == pytest.approx((-10 + 30 - 50 + 20) / 4)  # -2.5
    assert timing.mean_end_bias_ms == pytest.approx((40 + 50 - 20 + 70) / 4)  # +35
    assert timing.mean_abs_start_ms == pytest.approx((10 + 30 + 50 + 20) / 4)  # 27.5
    assert timing.mean_abs_end_ms == pytest.approx((40 + 50 + 20 + 70) / 4)  # 45
    assert correct_char_timing_lines(timing) == [
        "%AAS_COR start 27.50 ms end 45.00 ms [ 4 correct chars: 44.44% of 9 ref chars ]",
        "%BIAS_COR start -2.50 ms end +35.00 ms [ mean hyp - ref over the same 4 chars ]",
    ]
    shift = scores.shift
    assert shift.num_correct == timing.num_correct and scores.skipped == []
    assert (shift.num_substituted, shift.num_deleted, shift.num_inserted) == (1, 1 + 3, 1)
    assert timestamp_shift_line(shift).startswith("%AAS start ")


def test_sums_add_across_utterances():
    total = correct_char_timing(REF, HYP) + correct_char_timing([("e", 0, 100)], [("e", 40, 100)])
    assert (total.num_correct, total.num_ref_chars) == (4, 5)
    assert total.mean_start_bias_ms == pytest.approx((-10 + 30 - 50 + 40) / 4)
    assert total.mean_end_bias_ms == pytest.approx((40 + 50 - 20 + 0) / 4)


def test_nothing_correct_gives_nan():
    timing = correct_char_timing([("a", 0, 100)], [("b", 0, 100)])
    assert (timing.num_correct, timing.num_ref_chars) == (0, 1)
    assert math.isnan(timing.mean_abs_start_ms) and math.isnan(timing.mean_end_bias_ms)
    assert correct_char_timing_lines(timing) == [
        "%AAS_COR start nan ms end nan ms [ 0 correct chars: 0.00% of 1 ref chars ]",
        "%BIAS_COR start nan ms end nan ms [ mean hyp - ref over the same 0 chars ]",
    ]
    assert math.isnan(CorrectCharTiming().usable_percent)
    assert correct_char_timing_lines(CorrectCharTiming())[0] == (
        "%AAS_COR start nan ms end nan ms [ 0 correct chars: nan% of 0 ref chars ]")


def test_timestamp_shift_hand_example():
    ref = [("今", 0, 200), ("天", 200, 400), ("好", 400, 600), ("吗", 600, 800)]
    # 今 correct, 天 -> 大 and 吗 -> 啊 substituted (cost 1 each, cheaper than delete + insert)
    hyp = [("今", 30, 180), ("大", 250, 420), ("好", 390, 610), ("啊", 610, 700)]
    shift = timestamp_shift(ref, hyp)
    assert (shift.num_correct, shift.num_substituted, shift.num_deleted, shift.num_inserted) == (2, 2, 0, 0)
    # starts: 30 + 50 + 10 + 10 = 100 over 4 pairs; ends: 20 + 20 + 10 + 100 = 150
    assert shift.mean_start_shift_ms == pytest.approx(25.0)
    assert shift.mean_end_shift_ms == pytest.approx(37.5)


def test_timestamp_shift_counts_deletions_and_insertions_without_shifting():
    ref = [("a", 0, 100), ("b", 100, 200), ("c", 200, 300), ("d", 300, 400)]
    shift = timestamp_shift(ref, [("a", 10, 90), ("d", 330, 430)])  # b, c deleted
    assert (shift.num_correct, shift.num_substituted, shift.num_deleted, shift.num_inserted) == (2, 0, 2, 0)
    assert shift.start_shift_ms_sum == pytest.approx(10 + 30)
    assert shift.end_shift_ms_sum == pytest.approx(10 + 30)
    inserted = timestamp_shift(ref[:2], [("a", 0, 40), ("x", 40, 60), ("y", 60, 80), ("b", 80, 200)])
    assert (inserted.num_correct, inserted.num_substituted, inserted.num_deleted, inserted.num_inserted) == (2, 0, 0, 2)
    assert inserted.start_shift_ms_sum == pytest.approx(0 + 20)
    assert inserted.end_shift_ms_sum == pytest.approx(60 + 0)
    total = shift + TimestampShift(start_shift_ms_sum=60, end_shift_ms_sum=0, num_correct=2)
    assert total.mean_start_shift_ms == pytest.approx(100 / 4)
    assert timestamp_shift(ref, []).num_pairs == 0
    assert np.isnan(timestamp_shift(ref, []).mean_start_shift_ms)




def test_timing_uses_the_cer_alignment_pairs():
    # ab vs ba: the CER alignment is two substitutions, so no character counts as correct and both
    # pairs enter %AAS as substitutions (a deletion + insertion alignment would pair nothing).
    ref, hyp = [("a", 0, 100), ("b", 100, 200)], [("b", 0, 90), ("a", 90, 210)]
    result = compute_cer({"u": "ab"}, {"u": "ba"})
    scores = compute_timestamp_scores(result, {"u": ref}, {"u": ["b", "a"]}, {"u": [[0, 90], [90, 210]]})
    assert (scores.shift.num_correct, scores.shift.num_substituted) == (0, 2)
    assert (scores.shift.num_deleted, scores.shift.num_inserted) == (0, 0)
    assert scores.shift.start_shift_ms_sum == pytest.approx(0 + 10)
    assert scores.timing.num_correct == 0
    # given pairs are used as they are, not recomputed
    pairs = result.utts[0].pairs
    assert timestamp_shift(ref, hyp, pairs) == scores.shift
    assert correct_char_timing(ref, hyp, pairs) == scores.timing


def test_units_that_are_not_the_scored_characters_are_skipped_and_named(caplog):
    refs = {"u1": "今天", "u2": "你好", "u3": "早"}
    hyps = {"u1": "今天", "u2": "你好", "u3": "早", "u4": "多"}
    truth = {
        "u1": [("今", 0, 100), ("天", 100, 200)],
        "u2": [("你", 0, 100), ("好", 100, 200)],
        "u3": [("晚", 0, 100)],  # ground truth of another text: skipped
        "u9": [("啊", 0, 100)],  # not in the reference text: skipped
    }
    tokens = {"u1": ["今", "<unk>", "天"], "u2": ["你好"], "u3": ["早"], "u4": ["多"]}
    times = {"u1": [[10, 90], [90, 95], [110, 190]], "u2": [[0, 200]], "u3": [[0, 100]], "u4": [[0, 50]]}
    with caplog.at_level(logging.WARNING):
        scores = compute_timestamp_scores(compute_cer(refs, hyps), truth, tokens, times)
    # u1 only: <unk> has no text and is left out, 今 (+10, -10), 天 (+10, -10)
    assert (scores.shift.num_correct, scores.shift.num_pairs, scores.timing.num_ref_chars) == (2, 2, 2)
    assert scores.timing.mean_start_bias_ms == pytest.approx(10.0)
    assert scores.timing.mean_end_bias_ms == pytest.approx(-10.0)
    # u2: one two-character token; u3: other characters; u4: no ground truth; u9: no reference
    assert scores.skipped == ["u2", "u3", "u4", "u9"]
    assert "u2, u3" in caplog.text and "u4" in caplog.text and "u9" in caplog.text
    assert timestamp_shift_line(scores.shift, len(scores.skipped)).endswith("; 4 utts skipped ]")
