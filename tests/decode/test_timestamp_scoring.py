"""Timestamp scoring over correctly recognised characters: %AAS_COR and %BIAS_COR (hand examples)."""

import math

import pytest

from funasr_lite.decode.scoring import (
    CorrectCharTiming,
    compute_correct_char_timing,
    compute_timestamp_shift,
    correct_char_timing,
    correct_char_timing_lines,
    timestamp_shift_line,
)
from funasr_lite.decode.timestamps import timestamp_shift

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
    timing = compute_correct_char_timing(refs, tokens, times)
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
    shift, skipped = compute_timestamp_shift(refs, tokens, times)
    assert shift.num_correct == timing.num_correct and skipped == []
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
