"""The seed's long-audio layout: a BiCifParaformer dir (random weights from funasr's class) with the
released FSMN-VAD and a CT-Transformer punctuation model. FunASR's AutoModel with the same three dirs
gives our text, character times and sentences; ours batches segments (packed BLSTM), FunASR is run
one segment per batch (its BLSTM reads a batch's padding)."""

import logging
import os
import sys

import pytest
import soundfile

from funasr_lite import SpeechRecognizer
from funasr_lite.inference.longform import FUNASR_SENTENCE_MARKS
from funasr_lite.models.vad.model import released_vad_model_dir
from test_bicif_model_dir import UTTERANCES, bicif_funasr_config, write_bicif_dir
from test_infer import TOKENS, write_corpus
from test_longform import per_segment_reference, write_punc_model_dir

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
from vad_recordings import build_recording  # noqa: E402

logging.getLogger("funasr").setLevel(logging.WARNING)
SR = 16000


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bicif_longform")
    _, waves = write_corpus(str(root / "corpus"), UTTERANCES, with_feats=False)
    bicif = write_bicif_dir(str(root / "bicif"), bicif_funasr_config(), waves.values())
    return bicif, released_vad_model_dir(), write_punc_model_dir(str(root / "punc"), TOKENS)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    audio, _ = build_recording(51, 40.0, 20.0, level=0.6)
    path = str(tmp_path_factory.mktemp("rec") / "rec.wav")
    soundfile.write(path, audio, SR, subtype="PCM_16")
    return path, soundfile.read(path, dtype="float32")[0]


def test_vad_and_bicif_equal_automodel_and_segments_decoded_alone(dirs, recording):
    bicif, vad, _ = dirs
    path, samples = recording
    ours = SpeechRecognizer.from_model_dir(bicif, vad_model=vad, batch_size_s=20)(path)[0]
    expected = funasr_automodel_with(bicif, vad_model=vad).generate(input=path, batch_size_s=1)[0]
    assert len(ours["token"]) > 40
    assert ours["text"] == expected["text"].replace(" ", "")
    assert ours["timestamp"] == expected["timestamp"]
    # our segments, each decoded alone and shifted by its start, give the same times (20 ms grid)
    from funasr_lite import VAD

    tokens, stamps = per_segment_reference(SpeechRecognizer.from_model_dir(bicif), samples,
                                           VAD.from_model_dir(vad)(path))
    assert ours["token"] == tokens and ours["timestamp"] == stamps
    assert any(a % 60 for pair in stamps for a in pair)  # not the 60 ms CIF grid


def test_vad_bicif_and_punctuation_equal_automodel_sentences(dirs, recording):
    bicif, vad, punc = dirs
    path, _ = recording
    ours = SpeechRecognizer.from_model_dir(bicif, vad_model=vad, punc_model=punc, batch_size_s=20,
                                           sentence_marks=FUNASR_SENTENCE_MARKS)(path)[0]
    expected = funasr_automodel_with(bicif, vad_model=vad, punc_model=punc).generate(
        input=path, batch_size_s=1, sentence_timestamp=True)[0]
    assert ours["text"] == expected["text"]
    assert ours["timestamp"] == expected["timestamp"]
    theirs = expected["sentence_info"]
    assert len(theirs) >= 20
    # FunASR drops the tokens after the last mark from its sentences; ours keep them as a last one
    mine = ours["sentence_info"][: len(theirs)]
    assert [(s["start"], s["end"], s["timestamp"]) for s in mine] == \
        [(s["start"], s["end"], s["timestamp"]) for s in theirs]
    # Ours: each sentence is the characters its times belong to, then its mark.
    stamps_to_token = {tuple(pair): token for pair, token in zip(ours["timestamp"], ours["token"])}
    for sentence in mine:
        assert sentence["text"][:-1] == "".join(stamps_to_token[tuple(pair)] for pair in sentence["timestamp"])
    # FunASR's sentence texts agree up to the first sentence its splitter gives more characters
    # than times (here at a VAD segment join); from there its sentence texts drift from its own
    # text and times (which equal ours). Ours stay the characters of their times (checked above).
    differ = [i for i, (a, b) in enumerate(zip(mine, theirs)) if a["text"] != b["text"]]
    misplaced = [i for i, s in enumerate(theirs) if len(s["text"]) - 1 != len(s["timestamp"])]
    assert differ[:1] == misplaced[:1] and differ[0] >= 10


def funasr_automodel_with(model_dir, **dirs):
    from funasr import AutoModel

    return AutoModel(model=model_dir, device="cpu", disable_update=True, disable_pbar=True, disable_log=True,
                     **dirs)


def test_seaco_with_vad_and_hotwords_equals_automodel(tmp_path, recording):
    """The long-form pipeline with hotwords (SeACo): AutoModel's text and times, one VAD segment per
    FunASR batch (its filter and BLSTM read a batch's padding; ours are per utterance)."""
    from test_hotword_model_dirs import HOTWORDS, write_seaco_dir
    from test_infer import synth_wave

    seaco = write_seaco_dir(str(tmp_path / "seaco"), [synth_wave(2.0, seed=s) for s in range(3)])
    vad = released_vad_model_dir()
    path, _ = recording
    ours = SpeechRecognizer.from_model_dir(seaco, vad_model=vad, batch_size_s=20)(path, hotword=HOTWORDS)[0]
    plain = SpeechRecognizer.from_model_dir(seaco, vad_model=vad, batch_size_s=20)(path)[0]
    expected = funasr_automodel_with(seaco, vad_model=vad).generate(input=path, batch_size_s=1, hotword=HOTWORDS)[0]
    assert ours["text"] == expected["text"].replace(" ", "") and ours["timestamp"] == expected["timestamp"]
    assert ours["text"] != plain["text"] and len(ours["token"]) > 40
