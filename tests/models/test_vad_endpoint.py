"""The VAD endpoint state machine on hand-made posteriors, against hand-computed boundaries.

Released options: 10 ms frames, window 20 frames (silence->speech at >= 15 speech frames,
speech->silence at <= 15), start moved back by window + look-back = 40 frames, end kept
look-ahead + 1 = 11 frames after the end silence starts counting, segments cut at 6000 frames.
"""

import numpy as np
import pytest

from funasr_lite.models.vad import EndpointDetector, VadOptions
from funasr_lite.models.vad.endpoint import WindowDetector

SPEECH, SILENCE = 0.01, 0.99  # posterior of the silence pdf


def run(states, end_silence_ms=800, chunks=None, decibel=None, **option_changes):
    """Segments for a frame sequence given as [(silence posterior, frame count), ...]."""
    options = VadOptions(max_end_silence_time=end_silence_ms, **option_changes)
    prob = np.concatenate([np.full(count, value) for value, count in states])
    decibel = np.zeros(prob.size) if decibel is None else decibel
    detector = EndpointDetector(options, dynamic_silence=chunks is not None)
    bounds = np.cumsum([0] + list(chunks or [prob.size]))
    for index, (begin, end) in enumerate(zip(bounds[:-1], bounds[1:])):
        final = index == len(bounds) - 2
        detector.start_chunk()
        detector.accept(prob[begin:end], decibel[begin:end], is_final=final)
        if not final:
            detector.end_chunk()
    return detector.segments


def test_window_detector_hysteresis():
    window = WindowDetector(20, 15, 15)
    changes = [window.push(True) for _ in range(20)]
    assert changes[13] == (False, False) and changes[14] == (False, True)  # the 15th speech frame
    changes = [window.push(False) for _ in range(5)]
    assert changes[3] == (True, True) and changes[4] == (True, False)  # 15 speech frames left in 20


def test_one_segment_start_and_end():
    # speech frames 100..249: the window confirms speech at 114 -> start 114 - 40 = 74 (740 ms);
    # it confirms silence at 254 (15 of 235..254 are speech); end silence 800 - 150 = 650 ms = 65
    # frames after 254 -> frame 319; end = 319 - (65 - 10 - 1) = 265 -> end_ms (265 + 1) * 10.
    assert run([(SILENCE, 100), (SPEECH, 150), (SILENCE, 200)]) == [[740, 2660]]


def test_last_frame_closes_an_open_segment():
    # speech 100..199, then 30 silence frames: the end silence is not reached; the last frame
    # (229) ends the segment at (229 + 1) * 10.
    assert run([(SILENCE, 100), (SPEECH, 100), (SILENCE, 30)]) == [[740, 2300]]


def test_long_speech_is_cut_at_max_single_segment_time():
    # speech from frame 50: start 64 - 40 = 24; cut when t - 24 + 1 > 6000, t = 6024 -> 60250 ms;
    # the next segment starts right after (max(6025, 6039 - 40)) and the last frame (7049) ends it.
    assert run([(SILENCE, 50), (SPEECH, 7000)]) == [[240, 60250], [60250, 70500]]


def test_silence_noise_and_quiet_frames_give_no_segment():
    assert run([(SILENCE, 3000)]) == []
    assert run([(0.45, 3000)]) == []  # 1 - 0.45 < 0.45 + 0.6: not confident enough for speech
    # speech posteriors in frames quieter than decibel_thres count as silence
    quiet = np.full(450, -70.0)
    assert run([(SILENCE, 100), (SPEECH, 150), (SILENCE, 200)], decibel=quiet, decibel_thres=-60.0) == []


def test_two_segments_after_a_long_pause():
    # first as in test_one_segment_start_and_end; speech again at 320..469: confirmed at 334 ->
    # start 294 (the first segment's tail ended at frame 265); silence confirmed at 474 ->
    # 474 + 65 = 539, end 539 - 54 = 485 -> 4860 ms.
    segments = run([(SILENCE, 100), (SPEECH, 150), (SILENCE, 70), (SPEECH, 150), (SILENCE, 200)])
    assert segments == [[740, 2660], [2940, 4860]]


def test_single_utterance_mode_stops_after_the_first_segment():
    states = [(SILENCE, 100), (SPEECH, 150), (SILENCE, 70), (SPEECH, 150), (SILENCE, 200)]
    assert run(states, detect_mode=0) == [[740, 2660]]
    # the start silence times out when it passes max_start_silence_time (3000 ms) at frame 300;
    # it counts until the window confirms speech, 14 frames after speech starts: speech from 287
    # is confirmed at 301, too late; speech from 286 at 300, in time (start 300 - 40 = 260).
    assert run([(SILENCE, 287), (SPEECH, 150), (SILENCE, 200)], detect_mode=0) == []
    assert run([(SILENCE, 286), (SPEECH, 150), (SILENCE, 200)], detect_mode=0)[0][0] == 2600


def test_dynamic_schedule_shortens_the_end_silence_in_the_next_chunk():
    # chunk 1 (6000 frames) ends inside speech (from 5000): at chunk 2's start FunASR counts 60 s
    # of accumulated speech -> end silence 200 - 150 = 50 ms: after the speech->silence change at
    # 6104 (speech ends at 6099), 5 silence frames -> t = 6109, look-back max(0, 5 - 11) = 0,
    # end (6109 + 1) * 10. Start: 5014 - 40 = 4974.
    states = [(SILENCE, 5000), (SPEECH, 1100), (SILENCE, 300)]
    assert run(states, chunks=[6000, 400]) == [[49740, 61100]]
    # with a fixed 800 ms end silence: 6104 + 65 = 6169, end 6169 - 54 = 6115
    assert run(states) == [[49740, 61160]]


def test_options_from_model_conf_name_problems():
    with pytest.raises(ValueError, match="sil_pdf_ids"):
        VadOptions.from_model_conf({"sil_pdf_ids": [0, 1], "silence_pdf_num": 1})
    options = VadOptions.from_model_conf({"max_end_silence_time": 500, "snr_mode": 0})
    assert options.max_end_silence_time == 500
