"""The embedded synthetic corpus: layout, formats, disjoint splits, timestamps, determinism."""

import json
import re

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from funasr_lite.data import synthetic_corpus as sc
from funasr_lite.data.char_timestamps import read_char_timestamps
from funasr_lite.data.datadir import DataDirError, read_kv

torch.set_num_threads(1)

TEXT = sc.default_text_path()
MICRO = sc.CorpusSize({"train": 2, "dev": 1, "test": 1}, {"train": 2, "dev": 2, "test": 2})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    record = sc.generate_corpus(str(out), size="tiny", seed=1, nj=1)
    root = out / "data_aishell"
    transcript = read_kv(root / "transcript" / sc.TRANSCRIPT_NAME)
    wavs = {p.stem: p for p in (root / "wav").rglob("*.wav")}
    return {"out": out, "root": root, "record": record, "transcript": transcript, "wavs": wavs}


@pytest.fixture(scope="module")
def small_text(tmp_path_factory):
    """The first 600 paragraphs of the real text: enough sentences, quick to read."""
    path = tmp_path_factory.mktemp("text") / "people_daily_head.txt"
    with open(TEXT, encoding="utf-8") as src, open(path, "w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i == 600:
                break
            dst.write(line)
    return str(path)


def split_of(path):
    return path.parent.parent.name


# --------------------------------------------------------------------------- layout and formats

def test_layout_and_ids(tiny):
    size = sc.SIZES["tiny"]
    wavs = tiny["wavs"]
    assert len(wavs) == sum(size.num_utts(s) for s in sc.SPLITS)
    for utt, path in wavs.items():
        split, speaker = split_of(path), path.parent.name
        assert path.parent.parent.parent == tiny["root"] / "wav"
        assert split in sc.SPLITS
        assert re.fullmatch(r"S\d{4}", speaker), speaker
        assert re.fullmatch(r"BAC009S\d{4}W\d{4}", utt), utt
        assert utt[6:11] == speaker
    for split in sc.SPLITS:
        speakers = {p.parent.name for p in wavs.values() if split_of(p) == split}
        assert len(speakers) == size.speakers[split]
    done = json.loads((tiny["root"] / ".done").read_text(encoding="utf-8"))
    assert done["params"]["size"] == "tiny" and done["params"]["seed"] == 1
    assert done["counts"]["train"]["utterances"] == size.num_utts("train")
    assert done["counts"]["dev"]["speakers"] == size.speakers["dev"]


def test_wavs_are_16k_mono_int16(tiny):
    for path in tiny["wavs"].values():
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "WAV")
        assert 1.0 < info.duration < 15.0


def test_transcript_covers_exactly_the_wavs(tiny):
    transcript = tiny["transcript"]
    assert set(transcript) == set(tiny["wavs"])
    keys = list(transcript)
    assert keys == sorted(keys)
    for utt, text in transcript.items():
        chars = text.replace(" ", "")
        assert sc.MIN_CHARS <= len(chars) <= sc.MAX_CHARS, (utt, text)
        assert all(sc.is_chinese_char(c) for c in chars), (utt, text)
    # Word segmentation is kept: most sentences have several words.
    assert sum(" " in t for t in transcript.values()) > 0.8 * len(transcript)


def test_splits_disjoint_by_speaker_and_sentence(tiny):
    speakers = {s: set() for s in sc.SPLITS}
    sentences = {s: set() for s in sc.SPLITS}
    for utt, path in tiny["wavs"].items():
        speakers[split_of(path)].add(path.parent.name)
        sentences[split_of(path)].add(tiny["transcript"][utt].replace(" ", ""))
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert not speakers[a] & speakers[b]
        assert not sentences[a] & sentences[b]
    variants = {v["variant"] for v in tiny["record"]["speakers"].values()}
    assert len(variants) == len(tiny["record"]["speakers"])


# --------------------------------------------------------------------------- timestamps

def test_timestamps_one_per_char_monotone_within_audio(tiny):
    stamps = read_char_timestamps(tiny["root"] / "transcript" / sc.TIMESTAMPS_NAME)
    assert set(stamps) == set(tiny["transcript"])
    for utt, entries in stamps.items():
        assert "".join(c for c, _, _ in entries) == tiny["transcript"][utt].replace(" ", "")
        duration_ms = sf.info(str(tiny["wavs"][utt])).frames / 16
        previous_end = 0
        for _, start, end in entries:
            assert previous_end <= start < end <= duration_ms
            previous_end = end


def test_timestamps_mark_the_speech(tiny):
    """Audio inside the character spans is far louder than the lead-in before the first one."""
    stamps = read_char_timestamps(tiny["root"] / "transcript" / sc.TIMESTAMPS_NAME)
    for utt in list(stamps)[:20]:
        audio, rate = sf.read(str(tiny["wavs"][utt]), dtype="float32")
        inside = np.concatenate([audio[s * 16:e * 16] for _, s, e in stamps[utt]])
        lead_in = audio[:max(stamps[utt][0][1] * 16 - 160, 160)]
        ratio_db = 10 * np.log10(np.mean(inside ** 2) / np.mean(lead_in ** 2))
        assert ratio_db > 10.0, (utt, ratio_db)


def test_read_char_timestamps_rejects_bad_lines(tmp_path):
    path = tmp_path / "ts.txt"
    path.write_text("U1 中 0 100 国 120 300\nU2 中 0 100 国\n", encoding="utf-8")
    with pytest.raises(DataDirError, match=r"ts\.txt:2: utterance 'U2'"):
        read_char_timestamps(path)
    path.write_text("U1 中 0 100 国 50 300\n", encoding="utf-8")
    with pytest.raises(DataDirError, match=r"ts\.txt:1: .*backwards"):
        read_char_timestamps(path)
    path.write_text("U1 中 0 100 国 120 300\n", encoding="utf-8")
    assert read_char_timestamps(path) == {"U1": [("中", 0, 100), ("国", 120, 300)]}


# --------------------------------------------------------------------------- determinism, resume

def test_same_seed_same_bytes_whatever_nj_and_resume(tmp_path, small_text):
    first = sc.generate_corpus(str(tmp_path / "a"), seed=3, nj=1, text_path=small_text, corpus_size=MICRO)
    second = sc.generate_corpus(str(tmp_path / "b"), seed=3, nj=2, text_path=small_text, corpus_size=MICRO)
    assert first["counts"] == second["counts"]
    root_a, root_b = tmp_path / "a" / "data_aishell", tmp_path / "b" / "data_aishell"
    files = sorted(p.relative_to(root_a) for p in root_a.rglob("*") if p.is_file() and p.name != ".done")
    assert len([f for f in files if f.suffix == ".wav"]) == 8
    for rel in files:
        assert (root_a / rel).read_bytes() == (root_b / rel).read_bytes(), rel

    # A different seed gives different audio and text.
    other = sc.generate_corpus(str(tmp_path / "c"), seed=4, nj=1, text_path=small_text, corpus_size=MICRO)
    assert other["counts"]["train"]["utterances"] == 4
    text_a = (root_a / "transcript" / sc.TRANSCRIPT_NAME).read_bytes()
    text_c = (tmp_path / "c" / "data_aishell" / "transcript" / sc.TRANSCRIPT_NAME).read_bytes()
    assert text_a != text_c

    # Rerun with the same parameters: nothing is rewritten.
    transcript_path = root_b / "transcript" / sc.TRANSCRIPT_NAME
    mtime = transcript_path.stat().st_mtime_ns
    sc.generate_corpus(str(tmp_path / "b"), seed=3, nj=1, text_path=small_text, corpus_size=MICRO)
    assert transcript_path.stat().st_mtime_ns == mtime

    # Other parameters on the same directory: refused.
    with pytest.raises(sc.CorpusError, match="other parameters"):
        sc.generate_corpus(str(tmp_path / "b"), seed=5, nj=1, text_path=small_text, corpus_size=MICRO)

    # A killed run (no .done, a missing wav, a truncated wav) resumes to the same bytes.
    wav_files = [f for f in files if f.suffix == ".wav"]
    (root_b / ".done").unlink()
    (root_b / wav_files[0]).unlink()
    truncated = root_b / wav_files[-1]
    truncated.write_bytes(truncated.read_bytes()[:1000])
    kept = root_b / wav_files[1]
    kept_mtime = kept.stat().st_mtime_ns
    sc.generate_corpus(str(tmp_path / "b"), seed=3, nj=1, text_path=small_text, corpus_size=MICRO)
    assert (root_b / ".done").exists()
    assert kept.stat().st_mtime_ns == kept_mtime
    for rel in files:
        assert (root_a / rel).read_bytes() == (root_b / rel).read_bytes(), rel


# --------------------------------------------------------------------------- noise and mixing

def test_mix_at_snr_matches_torchaudio_add_noise():
    rng = np.random.default_rng(0)
    clean = rng.standard_normal(4000) * 0.1
    noise = rng.standard_normal(4000) * 0.7
    for snr in (15.0, 22.5, 35.0):
        mixed = sc.mix_at_snr(clean, noise, snr)
        expected = AF.add_noise(torch.from_numpy(clean)[None], torch.from_numpy(noise)[None],
                                torch.tensor([snr], dtype=torch.float64))[0].numpy()
        np.testing.assert_allclose(mixed, expected, rtol=1e-10, atol=1e-12)
        added = mixed - clean
        measured = 10 * np.log10(np.sum(clean ** 2) / np.sum(added ** 2))
        assert measured == pytest.approx(snr, abs=1e-9)


def test_noise_colours_have_their_spectral_slope():
    rng = np.random.default_rng(1)
    n = 1 << 16

    def octave_ratio(x):
        power = np.abs(np.fft.rfft(x)) ** 2
        freqs = np.fft.rfftfreq(n, 1 / 16000)
        low = power[(freqs >= 1000) & (freqs < 2000)].sum()
        high = power[(freqs >= 2000) & (freqs < 4000)].sum()
        return high / low

    # Power per octave: white doubles, pink stays flat, brown halves.
    assert octave_ratio(sc.make_noise("white", n, rng)) == pytest.approx(2.0, rel=0.1)
    assert octave_ratio(sc.make_noise("pink", n, rng)) == pytest.approx(1.0, rel=0.1)
    assert octave_ratio(sc.make_noise("brown", n, rng)) == pytest.approx(0.5, rel=0.1)
    babble = sc.make_noise("babble", 5000, rng, [np.ones(700, np.float32), np.full(300, 0.5, np.float32)])
    assert babble.shape == (5000,) and np.all(babble > 0)


def test_split_batch_cuts_at_the_long_pauses():
    ms = sc.ESPEAK_RATE // 1000
    tone = (np.sin(np.arange(200 * ms)) * 1000).astype(np.int16)
    short_gap, long_gap = np.zeros(20 * ms, np.int16), np.zeros(600 * ms, np.int16)
    # Three syllables, the second with a 20 ms closure inside it.
    audio = np.concatenate([tone, long_gap, tone, short_gap, tone, long_gap, tone])
    regions = sc._split_batch(audio, 3)
    assert regions is not None and len(regions) == 3
    second = audio[regions[1][0]:regions[1][1]]
    assert np.count_nonzero(second) == np.count_nonzero(np.concatenate([tone, tone]))
    # Asking for four syllables would cut inside one: refused.
    assert sc._split_batch(audio, 4) is None


# --------------------------------------------------------------------------- text

def test_read_integer_by_hand():
    cases = {0: "零", 7: "七", 10: "十", 15: "十五", 20: "二十", 101: "一百零一", 110: "一百一十",
             1001: "一千零一", 2000: "两千", 5236: "五千二百三十六", 10010: "一万零一十",
             120000: "十二万", 100000001: "一亿零一", 30005000: "三千万五千"}
    for number, reading in cases.items():
        assert sc.read_integer(number) == reading, number


def test_spell_out_numbers():
    assert sc.spell_out_numbers("１９９８年") == "一九九八年"
    assert sc.spell_out_numbers("１２．３％") == "百分之十二点三"
    assert sc.spell_out_numbers("１１０．８亿") == "一百一十点八亿"
    assert sc.spell_out_numbers("３１日") == "三十一日"
    assert sc.spell_out_numbers("第21") == "第二十一"


def test_segments_from_tagged_line():
    line = ("１２月/t  ３１日/t  ，/w  “/w  中共中央/nt  ”/w  总书记/n  发表/v  新年/t  讲话/n  。/w  "
            "ＡＰＥＣ/nx  会议/n  召开/v  ，/w  好/a")
    segments = list(sc.segments_from_tagged_line(line))
    assert segments == [["十二月", "三十一日"], ["中共中央", "总书记", "发表", "新年", "讲话"], ["好"]]


def test_sentence_pinyin_is_phrase_aware():
    assert sc.sentence_pinyin(["银行", "旅行"]) == ["yin2", "hang2", "lv3", "xing2"]
    assert sc.sentence_pinyin(["我", "的"]) == ["wo3", "de5"]
    assert sc.sentence_pinyin(["嗯"]) is None  # n2: no vowel, espeak-ng cannot say it


def test_real_text_has_enough_distinct_sentences():
    sentences = sc.extract_sentences(TEXT)
    joined = ["".join(words) for words in sentences]
    assert len(set(joined)) == len(joined) >= 10_000
    for chars in joined[:2000]:
        assert sc.MIN_CHARS <= len(chars) <= sc.MAX_CHARS
        assert all(sc.is_chinese_char(c) for c in chars), chars


def test_speakers_distinct_for_every_size():
    for size in sc.SIZES.values():
        speakers = sc.make_speakers(size, seed=1)
        voices = [v for split in sc.SPLITS for v in speakers[split]]
        assert len({v.variant for v in voices}) == len(voices)
        assert len({v.speaker_id for v in voices}) == len(voices)
        assert len(speakers["train"]) >= 8 and len(speakers["dev"]) >= 3 and len(speakers["test"]) >= 3


def test_unsayable_syllable_drops_only_its_utterances(tmp_path, small_text, monkeypatch):
    real = sc.synthesize_syllables
    victim = {}

    def lose_one_syllable(voice, syllables, *args, **kwargs):
        audio = real(voice, syllables, *args, **kwargs)
        if voice.split == "train" and not victim:
            victim["syllable"] = sorted(audio)[0]
        audio.pop(victim.get("syllable"), None)
        return audio

    monkeypatch.setattr(sc, "synthesize_syllables", lose_one_syllable)
    record = sc.generate_corpus(str(tmp_path), seed=3, nj=1, text_path=small_text, corpus_size=MICRO)
    root = tmp_path / "data_aishell"
    dropped = record["dropped"]["utterances"]
    assert dropped and all(victim["syllable"] in reason for reason in dropped.values())
    transcript = read_kv(root / "transcript" / sc.TRANSCRIPT_NAME)
    wavs = {p.stem for p in (root / "wav").rglob("*.wav")}
    assert set(transcript) == wavs
    assert not wavs & set(dropped)
    assert len(wavs) + len(dropped) == 8
