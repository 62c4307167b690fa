"""The hotword test set of the synthetic corpus (funasr_lite/data/synthetic/hotword_set.py): tagged
entities, sentences no utterance says and entities no train text holds, said by the test voices."""

import os

import pytest
import soundfile as sf

import funasr_lite.data.synthetic as sc
from funasr_lite.data.char_timestamps import read_char_timestamps
from funasr_lite.data.datadir import read_kv
from funasr_lite.data.synthetic.hotword_set import build_hotword_set, run_entities
from funasr_lite.data.synthetic.text import tagged_line_runs
from test_synthetic_corpus import MICRO, small_text  # noqa: F401 (fixture)


def test_entities_join_names_and_keep_places_and_organisations():
    line = "中共中央/nt  总书记/n  江/nr  泽民/nr  在/p  北京/ns  会见/v  了/u  新华社/nt  记者/n  兰/nr  红光/nr  ，/w  说/v"
    runs = list(tagged_line_runs(line))
    assert [run[0] for run in runs][0][:4] == ["中共中央", "总书记", "江", "泽民"]
    assert run_entities(*runs[0][:2]) == ["中共中央", "江泽民", "北京", "新华社", "兰红光"]
    assert run_entities(["京"], ["ns"]) == []  # one character: not a hotword


@pytest.fixture(scope="module")
def hotword_set(tmp_path_factory, small_text):
    root = tmp_path_factory.mktemp("hw")
    sc.generate_corpus(str(root / "corpus"), size="micro", seed=1, nj=1, text_path=small_text, corpus_size=MICRO)
    transcript = read_kv(root / "corpus" / "data_aishell" / "transcript" / sc.TRANSCRIPT_NAME)
    train = {u: t for u, t in transcript.items() if (root / "corpus" / "data_aishell" / "wav" / "train" /
                                                     u[6:11] / f"{u}.wav").exists()}
    (root / "train_text").write_text("".join(f"{u} {t}\n" for u, t in train.items()), encoding="utf-8")
    summary = build_hotword_set(str(root / "corpus"), str(root / "train_text"), str(root / "set"), small_text,
                                seed=1, nj=1, num_hotwords=6, list_sizes=(6, 30), corpus_size=MICRO)
    return root, summary, transcript, train


def test_the_set_says_unseen_entities_in_unsaid_sentences_with_test_voices(hotword_set):
    root, summary, transcript, train = hotword_set
    out = root / "set"
    texts = read_kv(out / "text")
    entities = {u: line.split() for u, line in read_kv(out / "utt2entities").items()}
    assert summary["hotwords"] >= 6 and summary["utterances"] == len(texts) >= 2
    said = {t.replace(" ", "") for t in transcript.values()}
    train_blob = "\n".join(t.replace(" ", "") for t in train.values())
    test_speakers = {u[6:11] for u in transcript if (root / "corpus" / "data_aishell" / "wav" / "test" / u[6:11]).exists()}
    times = read_char_timestamps(str(out / "char_timestamps"))
    for utt, text in texts.items():
        chars = text.replace(" ", "")
        assert chars not in said and entities[utt] and all(e in chars and e not in train_blob for e in entities[utt])
        assert utt[6:11] in test_speakers
        assert "".join(c for c, _, _ in times[utt]) == chars
        path = read_kv(out / "wav.scp")[utt]
        assert os.path.isfile(path) and sf.info(path).samplerate == 16000
    lists = {n: (out / f"hotwords_{n}.txt").read_text(encoding="utf-8").split() for n in (6, 30)}
    hotwords = {e for es in entities.values() for e in es}
    assert set(lists[6][: len(hotwords)]) == hotwords and len(lists[30]) == 30
    assert lists[30][: len(lists[6])] == lists[6] and not set(lists[30][len(lists[6]):]) & hotwords
