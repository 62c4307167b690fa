"""Long-form pipeline (funasr_lite/inference/longform.py): VAD -> batched ASR -> joined, shifted results.

The reference for the joined result is independent of the pipeline's batching and joining: each VAD
segment (from ``VAD(...)``) decoded alone through the plain ``Paraformer`` API, its timestamps
shifted by hand. Bad input follows docs/longform.md: 0 samples and silence give an empty result,
8 kHz and stereo equal their 16 kHz / mono versions, a truncated WAV is named (alone: an error; in a
list: the others are done), a segment that fails is named and the others are kept.
"""

import logging
import os
import sys
import tracemalloc

import numpy as np
import pytest
import soundfile
import torch

from funasr_lite import VAD, Paraformer
from funasr_lite.bin import infer as infer_cli
from funasr_lite.inference.longform import (
    LongformError,
    LongformRecognizer,
    RecordingAudio,
    batch_segments,
    punctuated_text,
    sentences_from_marks,
    split_long_segments,
)
from funasr_lite.inference.speech2text import InputItem
from funasr_lite.inference.writers import format_srt, read_1best_recog, read_sentences, srt_time
from funasr_lite.models.vad.model import released_vad_model_dir
from test_infer import synth_wave, write_model_dir

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
from vad_recordings import build_recording, espeak  # noqa: E402

SR = 16000


# ---------------------------------------------------------------- pure functions, hand-computed


def test_split_long_segments_cuts_into_equal_parts():
    assert split_long_segments([[0, 1000], [2000, 12000], [20000, 20001]], 4000) == [
        [0, 1000], [2000, 5333], [5333, 8666], [8666, 12000], [20000, 20001]]
    assert split_long_segments([[0, 8000]], 4000) == [[0, 4000], [4000, 8000]]


def test_batches_are_sorted_by_length_and_capped_by_padded_seconds():
    segments = [[0, 3000], [4000, 5000], [6000, 8000], [9000, 10000], [11000, 21000]]  # 3, 1, 2, 1, 10 s
    # ascending length: 1 (#1), 1 (#3), 2 (#2), 3 (#0), 10 (#4); padded cap 6 s:
    # [1,3] padded 2 s; + #2 -> 3 x 2 s = 6 s ok; + #0 -> 4 x 3 = 12 > 6: new batch; #4 alone (longer than the cap)
    assert batch_segments(segments, 6000) == [[1, 3, 2], [0], [4]]
    assert batch_segments(segments, 1e9) == [[1, 3, 2, 0, 4]]
    assert batch_segments([], 6000) == []


def test_sentences_split_at_sentence_marks_with_token_times():
    tokens = list("今天好我们走吗")
    stamps = [[100 * i, 100 * i + 80] for i in range(7)]
    marks = ["", "，", "。", "", "", "", ""]
    sentences = sentences_from_marks(tokens, stamps, marks)
    assert sentences == [
        {"text": "今天，好。", "start": 0, "end": 280, "timestamp": stamps[:3]},
        {"text": "我们走吗", "start": 300, "end": 680, "timestamp": stamps[3:]},  # no closing mark: kept
    ]
    # FunASR's marks split at the comma too
    assert [s["text"] for s in sentences_from_marks(tokens, stamps, marks, "，。？、")] == ["今天，", "好。", "我们走吗"]
    assert punctuated_text(["我", "好", "ok", "hi"], ["", "。", "", "？"]) == "我好。ok hi？"


def test_srt_format():
    assert srt_time(3_723_004) == "01:02:03,004"
    assert format_srt([{"text": "你好。", "start": 1230, "end": 4560}, {"text": "再见", "start": 5000, "end": 5100}]) == (
        "1\n00:00:01,230 --> 00:00:04,560\n你好。\n\n2\n00:00:05,000 --> 00:00:05,100\n再见\n\n")


# ---------------------------------------------------------------- the pipeline


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_model_dir(str(tmp_path_factory.mktemp("model")), [synth_wave(2.0, seed=s) for s in range(3)])


@pytest.fixture(scope="module")
def vad_dir():
    return released_vad_model_dir()


@pytest.fixture(scope="module")
def plain(model_dir):
    return Paraformer.from_model_dir(model_dir)


@pytest.fixture(scope="module")
def longform(model_dir, vad_dir):
    return Paraformer.from_model_dir(model_dir, vad_model=vad_dir, batch_size_s=20)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A 40 s recording (speech with 0.3-3 s pauses, 20 dB SNR) as a 16-bit WAV; its samples as read back."""
    audio, _ = build_recording(51, 40.0, 20.0, level=0.6)
    path = str(tmp_path_factory.mktemp("rec") / "rec.wav")
    soundfile.write(path, audio, SR, subtype="PCM_16")
    samples, _ = soundfile.read(path, dtype="float32")
    return path, samples


def per_segment_reference(plain, samples, segments):
    """Each segment decoded alone by the plain API; tokens joined, timestamps shifted by the segment start."""
    tokens, stamps = [], []
    for start, end in segments:
        (result,) = plain(samples[start * SR // 1000 : end * SR // 1000], audio_fs=SR)
        tokens += result["token"]
        stamps += [[int(round(a)) + start, int(round(b)) + start] for a, b in result["timestamp"]]
    return tokens, stamps


def test_result_equals_segments_decoded_alone_and_shifted(longform, plain, recording, vad_dir, tmp_path):
    path, samples = recording
    segments = VAD.from_model_dir(vad_dir)(path)
    assert len(segments) >= 3 and max(e - s for s, e in segments) < 60000
    tokens, stamps = per_segment_reference(plain, samples, segments)
    assert len(tokens) > 20
    (result,) = longform(path, output_dir=str(tmp_path))
    assert list(result) == ["key", "text", "token", "score", "timestamp", "sentence_info"]
    assert result["key"] == "rec"
    assert result["token"] == tokens
    assert result["timestamp"] == stamps
    assert all(a[0] >= b[0] for a, b in zip(stamps[1:], stamps))  # time order across segments
    # no punctuation model: one sentence per segment with tokens, the segment's bounds
    voiced = [seg for seg in segments if per_segment_reference(plain, samples, [seg])[0]]
    assert [[s["start"], s["end"]] for s in result["sentence_info"]] == voiced
    assert sum(len(s["timestamp"]) for s in result["sentence_info"]) == len(tokens)

    (written,) = read_1best_recog(tmp_path / "1best_recog")
    assert written["token"] == tokens and written["timestamp"] == stamps and written["text"] == result["text"]
    assert written["audio_s"] == pytest.approx(samples.size / SR, abs=1e-3)
    sentences = read_sentences(tmp_path / "1best_recog" / "sentences")["rec"]
    assert [(s["start"], s["end"], s["text"]) for s in sentences] == [
        (s["start"], s["end"], s["text"]) for s in result["sentence_info"]]
    assert (tmp_path / "1best_recog" / "srt" / "rec.srt").read_text(encoding="utf-8") == format_srt(sentences)


def test_batching_and_segment_cutting(model_dir, vad_dir, longform, recording):
    path, samples = recording
    (reference,) = longform(path)
    one_by_one = Paraformer.from_model_dir(model_dir, vad_model=vad_dir, batch_size_s=0.001)
    assert one_by_one(path)[0]["token"] == reference["token"]  # batching does not change the result
    cut = Paraformer.from_model_dir(model_dir, vad_model=vad_dir, max_segment_s=4)
    item = InputItem("rec", "audio", path)
    segments = cut.longform.segments(RecordingAudio(item, SR))
    assert max(e - s for s, e in segments) <= 4000
    assert len(segments) > len(VAD.from_model_dir(vad_dir)(path))
    (result,) = cut(path)
    assert result["token"] == per_segment_reference(Paraformer.from_model_dir(model_dir), samples, segments)[0]


def test_without_vad_a_recording_is_one_segment(model_dir, plain, tmp_path):
    samples = synth_wave(3.0, seed=4)
    path = str(tmp_path / "short.wav")
    soundfile.write(path, samples, SR, subtype="PCM_16")
    recognizer = LongformRecognizer(Paraformer.from_model_dir(model_dir).speech2text, vad=None)
    (ours,) = recognizer.decode([InputItem("short", "audio", path)])
    (expected,) = plain(path)
    assert ours["token"] == expected["token"] and ours["token"]
    assert ours["segments"] == [[0, 3000]] and ours["sentence_info"][0]["start"] == 0


def write_punc_model_dir(path, tokens, seed=0):
    """A FunASR-layout CT-Transformer dir with random weights (built by funasr_lite), its classifier
    biased so that about a third of the tokens get a mark, half of them sentence ends."""
    import json

    import yaml

    from funasr_lite.models.punc.punctuator import build_ct_transformer

    config = {
        "model": "CTTransformer", "encoder": "SANMEncoder", "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>"},
        "model_conf": {"punc_list": ["<unk>", "_", "，", "。", "？", "、"], "punc_weight": [1.0] * 6,
                       "embed_unit": 16, "att_unit": 16, "dropout_rate": 0.1, "ignore_id": 0, "sentence_end_id": 3},
        "encoder_conf": {"input_size": 16, "output_size": 16, "attention_heads": 2, "linear_units": 32,
                         "num_blocks": 1, "dropout_rate": 0.1, "positional_dropout_rate": 0.1,
                         "attention_dropout_rate": 0.0, "input_layer": "pe",
                         "pos_enc_class": "SinusoidalPositionEncoder", "normalize_before": True,
                         "kernel_size": 11, "sanm_shfit": 0, "selfattention_layer_type": "sanm", "padding_idx": 0},
    }
    torch.manual_seed(seed)
    model = build_ct_transformer(config, len(tokens))
    with torch.no_grad():
        model.decoder.bias.copy_(torch.tensor([-9.0, 2.0, 2.6, 1.5, 0.0, 0.0]))
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, allow_unicode=True)
    with open(os.path.join(path, "tokens.json"), "w", encoding="utf-8") as f:
        json.dump(list(tokens), f, ensure_ascii=False)
    torch.save(model.state_dict(), os.path.join(path, "model.pt"))
    return path


FUNASR_PUNC_ID = {"": 1, "，": 2, "。": 3, "？": 4, "、": 5}


def test_punctuation_over_the_joined_text_and_sentences_as_funasr(model_dir, vad_dir, plain, recording, tmp_path):
    from funasr.utils.timestamp_tools import timestamp_sentence  # the oracle's sentence splitter

    from funasr_lite.inference.longform import FUNASR_SENTENCE_MARKS
    from funasr_lite.models.punc import Punctuator
    from test_infer import TOKENS

    path, samples = recording
    punc_dir = write_punc_model_dir(str(tmp_path / "punc"), TOKENS)
    segments = VAD.from_model_dir(vad_dir)(path)
    tokens, stamps = per_segment_reference(plain, samples, segments)
    marks = Punctuator.from_model_dir(punc_dir).punctuate_tokens(tokens)  # one pass over the joined tokens
    assert sum(m in ("。", "？") for m in marks) >= 3 and sum(m in ("，", "、") for m in marks) >= 3

    asr = Paraformer.from_model_dir(model_dir, vad_model=vad_dir, punc_model=punc_dir, batch_size_s=20)
    (result,) = asr(path, output_dir=str(tmp_path / "out"))
    assert result["token"] == tokens and result["timestamp"] == stamps
    assert result["text"] == "".join(t + m for t, m in zip(tokens, marks))  # CJK characters: no spaces
    sentences = result["sentence_info"]
    assert "".join(s["text"] for s in sentences) == result["text"]
    assert all(s["text"][-1] in "。？" for s in sentences[:-1])
    assert [pair for s in sentences for pair in s["timestamp"]] == stamps
    assert all(s["start"] == s["timestamp"][0][0] and s["end"] == s["timestamp"][-1][1] for s in sentences)

    # split at every mark, as FunASR's AutoModel does: funasr's timestamp_sentence gives the same
    # sentences (it drops the tokens after the last mark; ours keeps them as a last sentence)
    funasr_style = Paraformer.from_model_dir(model_dir, vad_model=vad_dir, punc_model=punc_dir,
                                             sentence_marks=FUNASR_SENTENCE_MARKS)(path)[0]["sentence_info"]
    expected = timestamp_sentence([FUNASR_PUNC_ID[m] for m in marks], stamps, " ".join(tokens))
    tail = [] if marks[-1] else funasr_style[-1:]
    assert funasr_style == [{k: e[k] for k in ("text", "start", "end", "timestamp")} for e in expected] + tail
    assert len(funasr_style) > len(sentences)
    srt = (tmp_path / "out" / "1best_recog" / "srt" / "rec.srt").read_text(encoding="utf-8")
    assert srt.count(" --> ") == len(sentences) and sentences[0]["text"] in srt


# ---------------------------------------------------------------- bad input


def test_zero_samples_and_silence_give_an_empty_result(longform, tmp_path):
    empty = str(tmp_path / "empty.wav")
    soundfile.write(empty, np.zeros(0, dtype=np.int16), SR, subtype="PCM_16")
    silence = str(tmp_path / "silence.wav")
    soundfile.write(silence, np.zeros(20 * SR, dtype=np.int16), SR, subtype="PCM_16")
    for path in (empty, silence):
        out = tmp_path / ("out_" + os.path.basename(path))
        (result,) = longform(path, output_dir=str(out))
        assert result["text"] == "" and result["token"] == [] and result["sentence_info"] == []
        (written,) = read_1best_recog(out / "1best_recog")
        assert written["text"] == "" and written["timestamp"] == []
        assert (out / "1best_recog" / "srt" / (result["key"] + ".srt")).read_text() == ""


def test_pure_noise_follows_the_vad(longform, vad_dir, tmp_path):
    noise = (np.random.default_rng(3).standard_normal(30 * SR) * 0.1).astype(np.float32)
    path = str(tmp_path / "noise.wav")
    soundfile.write(path, noise, SR, subtype="PCM_16")
    segments = VAD.from_model_dir(vad_dir)(path)
    (result,) = longform(path)
    assert (result["token"] == []) == (segments == [])
    assert len(result["sentence_info"]) <= len(segments)


def test_8khz_is_resampled_and_stereo_downmixed(longform, recording, tmp_path):
    path, samples = recording
    mono = samples[: 20 * SR]
    stereo_path = str(tmp_path / "stereo.wav")
    soundfile.write(stereo_path, np.stack([mono, mono * 0.5], axis=1), SR, subtype="FLOAT")
    (stereo,) = longform(stereo_path)
    (expected,) = longform(mono * 0.75, audio_fs=SR)  # the channel mean
    assert stereo["token"] == expected["token"] and stereo["timestamp"] == expected["timestamp"]
    assert stereo["token"]

    import torchaudio.functional

    low = torchaudio.functional.resample(torch.from_numpy(mono), SR, 8000).numpy()
    low_path = str(tmp_path / "low.wav")
    soundfile.write(low_path, low, 8000, subtype="FLOAT")
    (from_file,) = longform(low_path)
    (from_array,) = longform(low, audio_fs=8000)
    assert from_file["token"] == from_array["token"] and from_file["token"]
    assert from_file["timestamp"] == from_array["timestamp"]


def test_truncated_wav_is_named_and_the_others_are_done(longform, recording, tmp_path, model_dir, vad_dir, caplog):
    path, _ = recording
    data = open(path, "rb").read()
    truncated = str(tmp_path / "cut.wav")
    with open(truncated, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(LongformError, match="cut.wav.*truncated"):
        longform(truncated)
    with caplog.at_level(logging.ERROR):
        results = longform([path, truncated], output_dir=str(tmp_path / "out"))
    assert [r["key"] for r in results] == ["rec", "cut"]
    assert results[0]["token"] and "truncated" in results[1]["error"]
    assert "recording cut is not decoded" in caplog.text
    assert [r["key"] for r in read_1best_recog(tmp_path / "out" / "1best_recog")] == ["rec"]
    failed = (tmp_path / "out" / "1best_recog" / "failed").read_text(encoding="utf-8")
    assert failed.startswith(f"cut\t{truncated}\t") and "truncated" in failed
    # the command line: the good one written, exit status 3 (some failed)
    rc = infer_cli.main(["--model_dir", model_dir, "--vad_model_dir", vad_dir, "--wav", path, truncated,
                         "--output_dir", str(tmp_path / "cli")])
    assert rc == 3
    assert [r["key"] for r in read_1best_recog(tmp_path / "cli" / "1best_recog")] == ["rec"]
    assert infer_cli.main(["--model_dir", model_dir, "--vad_model_dir", vad_dir, "--wav", truncated]) == 1


def test_a_failing_segment_is_named_and_the_others_kept(longform, recording, monkeypatch, caplog):
    path, _ = recording
    (reference,) = longform(path)
    speech2text = longform.speech2text
    audio = RecordingAudio(InputItem("rec", "audio", path), SR)
    segments = longform.longform.segments(audio)
    target = reference["sentence_info"][1]
    victim = segments.index([target["start"], target["end"]])
    victim_frames = speech2text.prepare(0, InputItem("x", "waveform", waveform=audio.read(*segments[victim]),
                                                     sample_rate=SR)).num_frames
    original = speech2text._search

    def failing_search(feats, lengths):
        if victim_frames in lengths.tolist():
            raise RuntimeError("injected failure")
        return original(feats, lengths)

    monkeypatch.setattr(speech2text, "_search", failing_search)
    with caplog.at_level(logging.WARNING):
        (result,) = longform(path)
    start, end = segments[victim]
    assert f"rec: segment {victim} ({start}-{end} ms) failed to decode" in caplog.text
    assert "injected failure" in caplog.text
    kept = [s for i, s in enumerate(reference["sentence_info"]) if [s["start"], s["end"]] != [start, end]]
    assert result["sentence_info"] == kept and len(kept) == len(reference["sentence_info"]) - 1


def _bursts_file(path, seconds):
    """Low noise with a spoken phrase every 60 s, as a 16-bit WAV."""
    audio = (np.random.default_rng(0).standard_normal(seconds * SR) * 0.002).astype(np.float32)
    speech = espeak("cmn-latn-pinyin", "jin1 tian1 tian1 qi4 hen3 hao3", 150, 50)
    for start in range(10, seconds - 5, 60):
        audio[start * SR : start * SR + speech.size] += 0.5 * speech
    soundfile.write(path, audio, SR, subtype="PCM_16")
    return path


def _traced_peak(asr, path):
    tracemalloc.start()
    try:
        (result,) = asr(path)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_file_is_read_in_blocks_not_whole(longform, tmp_path):
    """Bounded memory (the 3-hour run is bench/benchmark_longform.py): a 16 kHz file is never held
    whole, so the peak of numpy/Python allocations does not grow with the file's length (holding
    the file would add 4 bytes per sample: 11.5 MB more for the longer one)."""
    short_s, long_s = 70, 250
    short_path = _bursts_file(str(tmp_path / "short.wav"), short_s)
    long_path = _bursts_file(str(tmp_path / "long.wav"), long_s)
    assert RecordingAudio(InputItem("long", "audio", long_path), SR).waveform is None
    short, short_peak = _traced_peak(longform, short_path)
    long, long_peak = _traced_peak(longform, long_path)
    assert len(short["sentence_info"]) >= 1 and len(long["sentence_info"]) >= 4  # the bursts were decoded
    growth = long_peak - short_peak
    assert growth < 0.5 * (long_s - short_s) * SR * 4, f"peak grew {growth / 1e6:.1f} MB"
