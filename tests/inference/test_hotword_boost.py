"""Hotword boosting in beam search for a model without a bias branch (``hotword_score``,
decode/context_graph.py) through the API and ``infer``: the wiring, the option checks, and that a
SeACo dir takes both its bias branch and the boost."""

import os

import pytest

from funasr_lite import SpeechRecognizer
from funasr_lite.bin import infer as infer_cli
from funasr_lite.inference.speech2text import DecodeError
from funasr_lite.inference.writers import read_1best_recog
from test_infer import write_corpus, write_model_dir

HOTWORD = "我们"  # two tokens of the tiny model's vocabulary (tests/inference/test_infer.py TOKENS)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(str(tmp_path_factory.mktemp("corpus")))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, corpus):
    return write_model_dir(str(tmp_path_factory.mktemp("model")), list(corpus[1].values()))


def beam(model_dir, **options):
    return SpeechRecognizer.from_model_dir(model_dir, decode_mode="beam", beam_size=4, ctc_weight=0.3, **options)


def test_a_strong_boost_puts_the_hotword_in_every_hypothesis_with_room_for_it(model_dir, corpus):
    wav_scp = os.path.join(corpus[0], "wav.scp")
    plain = {r["key"]: r for r in beam(model_dir)(wav_scp)}
    boosted = {r["key"]: r for r in beam(model_dir, hotword=HOTWORD, hotword_score=50.0)(wav_scp)}
    assert sorted(plain) == sorted(boosted)
    roomy = [key for key, r in plain.items() if len(r["token"]) >= 2]
    assert len(roomy) >= 3
    for key in roomy:  # 2 x 50 outweighs any acoustic difference of the random model
        assert HOTWORD in boosted[key]["text"], (key, plain[key]["text"], boosted[key]["text"])
        assert len(boosted[key]["token"]) == len(plain[key]["token"])  # the CIF count is the same
    assert any(HOTWORD not in plain[key]["text"] for key in roomy)  # so the boost did change something


def test_a_negligible_boost_changes_nothing(model_dir, corpus):
    wav_scp = os.path.join(corpus[0], "wav.scp")
    plain = beam(model_dir)(wav_scp)
    boosted = beam(model_dir, hotword=HOTWORD, hotword_score=1e-9)(wav_scp)
    assert [r["text"] for r in boosted] == [r["text"] for r in plain]


def test_infer_takes_hotword_score(model_dir, corpus, tmp_path):
    out = tmp_path / "boost"
    assert infer_cli.main(["--model_dir", model_dir, "--data_dir", corpus[0], "--output_dir", str(out),
                           "--decode_mode", "beam", "--beam_size", "4", "--hotword", HOTWORD,
                           "--hotword_score", "50", "--hotword_topk", "28"]) == 0
    texts = [r["text"] for r in read_1best_recog(str(out / "1best_recog"))]
    assert len(texts) == 5 and sum(HOTWORD in text for text in texts) >= 3


def test_option_errors_are_named(model_dir, corpus):
    with pytest.raises(DecodeError, match="takes no hotwords .*hotword_score > 0"):
        SpeechRecognizer.from_model_dir(model_dir, hotword=HOTWORD)
    with pytest.raises(DecodeError, match="needs decode_mode beam"):
        SpeechRecognizer.from_model_dir(model_dir, hotword=HOTWORD, hotword_score=2.0)
    with pytest.raises(DecodeError, match="hotword_score must be >= 0"):
        beam(model_dir, hotword=HOTWORD, hotword_score=-1.0)
    with pytest.raises(DecodeError, match="hotword_topk must be >= 0"):
        beam(model_dir, hotword=HOTWORD, hotword_score=1.0, hotword_topk=-1)
    with pytest.raises(DecodeError, match="none of the 1 hotwords can be boosted"):
        beam(model_dir, hotword="龘", hotword_score=2.0)


def test_seaco_dir_takes_its_bias_branch_and_the_boost(tmp_path, corpus):
    from test_hotword_model_dirs import HOTWORDS, write_seaco_dir

    seaco_dir = write_seaco_dir(str(tmp_path / "seaco"), list(corpus[1].values()), seed=1)
    recognizer = SpeechRecognizer.from_model_dir(seaco_dir, decode_mode="beam", beam_size=4, hotword=HOTWORDS,
                                                 hotword_score=2.0)
    assert recognizer.speech2text.context is not None and recognizer.speech2text.boost is not None
    assert len(recognizer.speech2text.boost) == len(HOTWORDS.split())
    assert len(recognizer(os.path.join(corpus[0], "wav.scp"))) == 5
