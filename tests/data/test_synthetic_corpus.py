"""The embedded synthetic corpus: layout, formats, disjoint splits, timestamps, determinism."""

import json
import re

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

import funasr_lite.data.synthetic as sc
from funasr_lite.data.char_timestamps import read_char_timestamps
from funasr_lite.data.datadir import DataDirError, read_kv
from funasr_lite.data.synthetic import acoustics, corpus, render, text, voices
from funasr_lite.data.synthetic.espeak import Espeak, EspeakError, Prosody

torch.set_num_threads(1)

TEXT = sc.default_text_path()
MICRO = sc.CorpusSize({"train": 2, "dev": 1, "test": 1}, {"train": 2, "dev": 2, "test": 2})
SPLITS = voices.SPLITS


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    record = sc.generate_corpus(str(out), size="tiny", seed=1, nj=2)
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


def syllables_by_word(words):
    syllables = text.sentence_pinyin(words)
    it = iter(syllables)
    return [[next(it) for _ in word] for word in words]


# --------------------------------------------------------------------------- layout and formats

def test_layout_and_ids(tiny):
    size = sc.SIZES["tiny"]
    wavs = tiny["wavs"]
    assert len(wavs) == sum(size.num_utts(s) for s in SPLITS)
    for utt, path in wavs.items():
        split, speaker = split_of(path), path.parent.name
        assert path.parent.parent.parent == tiny["root"] / "wav"
        assert split in SPLITS
        assert re.fullmatch(r"S\d{4}", speaker), speaker
        assert re.fullmatch(r"BAC009S\d{4}W\d{4}", utt), utt
        assert utt[6:11] == speaker
    for split in SPLITS:
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
    for utt, line in transcript.items():
        chars = line.replace(" ", "")
        assert text.MIN_CHARS <= len(chars) <= text.MAX_CHARS, (utt, line)
        assert all(text.is_chinese_char(c) for c in chars), (utt, line)
    # Word segmentation is kept: most sentences have several words.
    assert sum(" " in t for t in transcript.values()) > 0.8 * len(transcript)


def test_splits_disjoint_by_speaker_and_sentence(tiny):
    speakers = {s: set() for s in SPLITS}
    sentences = {s: set() for s in SPLITS}
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


def onsets_and_offsets(audio, rate, min_silence_ms=60, share=0.01):
    """Energy onsets/offsets (ms) of the sound around every silence of at least ``min_silence_ms``."""
    frame = rate // 1000
    n = audio.size // frame
    rms = np.sqrt(np.mean(audio[:n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1))
    active = np.concatenate([[0], (rms > share * rms.max()).astype(int), [0]])
    edges = np.diff(active)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    onsets = [starts[i] for i in range(len(starts)) if i == 0 or starts[i] - ends[i - 1] >= min_silence_ms]
    offsets = [ends[i] for i in range(len(ends))
               if i == len(ends) - 1 or starts[i + 1] - ends[i] >= min_silence_ms]
    return np.array(onsets, float), np.array(offsets, float)


def test_syllable_times_match_the_audios_own_onsets():
    """espeak's phoneme events against the sound itself, on 90 sentences said with a pause after
    every word (so that many syllable onsets follow silence and can be found in the audio): every
    onset/offset the audio shows must have a syllable start/end near it."""
    espeak = Espeak.get()
    sentences = text.extract_sentences(TEXT)[:15]
    onset_errors, offset_errors = [], []
    for variant in ("f2", "m3", "klatt", "Andy", "steph", "m7"):
        espeak.set_voice(variant)
        espeak.set_prosody(Prosody(180, 50, 50))
        for words in sentences:
            said = espeak.speak_sentence(syllables_by_word(words), separator=", ")
            onsets, offsets = onsets_and_offsets(said.audio, espeak.sample_rate)
            starts = np.array([a for a, _ in said.spans]) * 1000 / espeak.sample_rate
            ends = np.array([b for _, b in said.spans]) * 1000 / espeak.sample_rate
            onset_errors += [np.min(np.abs(starts - t)) for t in onsets]
            offset_errors += [np.min(np.abs(ends - t)) for t in offsets]
    onset_errors, offset_errors = np.array(onset_errors), np.array(offset_errors)
    assert len(onset_errors) > 300
    # Measured: onsets 98.5 % within 20 ms (median 3.7 ms), offsets 95 % (median 4.9 ms); the
    # rest are silences inside a syllable (closures) that the energy detector also reports.
    assert np.mean(onset_errors <= 20) >= 0.95 and np.median(onset_errors) <= 10
    assert np.mean(offset_errors <= 20) >= 0.90 and np.median(offset_errors) <= 10


def test_syllable_by_syllable_reading_keeps_one_span_per_syllable():
    espeak = Espeak.get()
    espeak.set_voice("m3")
    espeak.set_prosody(Prosody(180, 50, 50))
    words = [["zhong1", "guo2"], ["ren2", "min2"], ["jie3", "fang4", "jun1"]]
    joined = espeak.speak_sentence(words)
    separate = espeak.speak_sentence(words, syllable_words=True)
    assert len(joined.spans) == len(separate.spans) == 7
    assert separate.audio.size > joined.audio.size  # boundaries after every syllable take time
    for spans, audio in ((joined.spans, joined.audio), (separate.spans, separate.audio)):
        assert all(a < b <= c for (a, b), (c, _) in zip(spans, spans[1:] + [(audio.size, 0)]))


def test_rendered_times_match_the_rendered_audio(tiny, monkeypatch):
    """Through render_utterance (resampling, lead-in, level, room off, noise far below): the first
    character starts and the last ends where the 16 kHz audio's sound starts and ends."""
    monkeypatch.setattr(render, "SNR_RANGE_DB", (90.0, 90.0))
    monkeypatch.setattr(render, "REVERB_SHARE", 0.0)
    speakers = voices.make_speakers(sc.SIZES["tiny"].speakers, 1)
    voice = speakers["dev"][0]
    sentences = text.extract_sentences(TEXT)[100:120]
    errors = []
    for index, words in enumerate(sentences, 1):
        plan = render.UtterancePlan(f"U{index}", voice.speaker_id, "dev", index, tuple(words),
                                    tuple(text.sentence_pinyin(words)))
        rendered = render.render_utterance(plan, voice, render.utterance_rng(1, plan), Espeak.get())
        onsets, offsets = onsets_and_offsets(rendered.audio, render.SAMPLE_RATE)
        errors.append(abs(rendered.char_times[0][1] - onsets[0]))
        errors.append(abs(rendered.char_times[-1][2] - offsets[-1]))
    assert max(errors) <= 20, errors


def test_same_utterance_same_audio_in_a_fresh_process(tiny):
    """What the corpus relies on (one fresh process per speaker): espeak-ng's output depends on
    what the process said before, so the generator never reuses a process across speakers."""
    import subprocess
    import sys

    code = ("from funasr_lite.data.synthetic.espeak import Espeak, Prosody;import hashlib;"
            "e=Espeak.get();e.set_voice('f2');e.set_prosody(Prosody(180,50,50));"
            "s=e.speak_sentence([['zhong1','guo2'],['ren2','min2']]);"
            "print(hashlib.sha256(s.audio.tobytes()).hexdigest(), s.spans)")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)}
    assert len(runs) == 1


def test_lm_text_never_holds_a_said_sentence(tiny):
    lm_path = tiny["root"] / "transcript" / sc.LM_TEXT_NAME
    lines = lm_path.read_text(encoding="utf-8").splitlines()
    assert tiny["record"]["lm_extra_sentences"] == len(lines) > 50_000
    said = {t.replace(" ", "") for t in tiny["transcript"].values()}
    joined = "\n".join(line.replace(" ", "") for line in lines)
    for sentence in said:
        assert sentence not in joined, sentence


def test_lm_extra_sentences_drops_containing_runs():
    sentences = [("今天", "天气"), ("今天", "天气", "很", "好"), ("明天", "见"), ("天气",)]
    kept = corpus.lm_extra_sentences(sentences, {"今天天气"})
    assert kept == [("明天", "见"), ("天气",)]


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
        mixed = acoustics.mix_at_snr(clean, noise, snr)
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
    assert octave_ratio(acoustics.make_noise("white", n, rng)) == pytest.approx(2.0, rel=0.1)
    assert octave_ratio(acoustics.make_noise("pink", n, rng)) == pytest.approx(1.0, rel=0.1)
    assert octave_ratio(acoustics.make_noise("brown", n, rng)) == pytest.approx(0.5, rel=0.1)
    speech = np.sin(np.arange(3000) / 7.0)
    babble = acoustics.make_noise("babble", 5000, rng, speech)
    assert babble.shape == (5000,) and np.std(babble) > 0


def test_room_impulse_response_decays_by_60_db_at_rt60():
    rng = np.random.default_rng(2)
    rir = acoustics.room_impulse_response(0.5, 6.0, 16000, rng)
    assert rir[0] == 1.0 and rir.size == 8000
    tail = rir[1:]
    assert 10 * np.log10(np.sum(tail ** 2)) == pytest.approx(-6.0, abs=1e-6)  # direct-to-reverb ratio
    early, late = np.mean(tail[:400] ** 2), np.mean(tail[-400:] ** 2)
    assert 10 * np.log10(early / late) == pytest.approx(57.0, abs=3.0)  # 60 dB over 0.5 s, 0.475 s apart
    # The direct path is at t=0: a click stays where it was.
    click = np.zeros(4000)
    click[1000] = 1.0
    wet = acoustics.reverberate(click, rir)
    assert np.argmax(np.abs(wet)) == 1000 and np.max(np.abs(wet[:1000])) < 1e-12


# --------------------------------------------------------------------------- text

def test_read_integer_by_hand():
    cases = {0: "零", 7: "七", 10: "十", 15: "十五", 20: "二十", 101: "一百零一", 110: "一百一十",
             1001: "一千零一", 2000: "两千", 5236: "五千二百三十六", 10010: "一万零一十",
             120000: "十二万", 100000001: "一亿零一", 30005000: "三千万五千"}
    for number, reading in cases.items():
        assert text.read_integer(number) == reading, number


def test_spell_out_numbers():
    assert text.spell_out_numbers("１９９８年") == "一九九八年"
    assert text.spell_out_numbers("１２．３％") == "百分之十二点三"
    assert text.spell_out_numbers("１１０．８亿") == "一百一十点八亿"
    assert text.spell_out_numbers("３１日") == "三十一日"
    assert text.spell_out_numbers("第21") == "第二十一"


def test_segments_from_tagged_line():
    line = ("１２月/t  ３１日/t  ，/w  “/w  中共中央/nt  ”/w  总书记/n  发表/v  新年/t  讲话/n  。/w  "
            "ＡＰＥＣ/nx  会议/n  召开/v  ，/w  好/a")
    segments = list(text.segments_from_tagged_line(line))
    assert segments == [["十二月", "三十一日"], ["中共中央", "总书记", "发表", "新年", "讲话"], ["好"]]


def test_sentence_pinyin_is_phrase_aware():
    assert text.sentence_pinyin(["银行", "旅行"]) == ["yin2", "hang2", "lv3", "xing2"]
    assert text.sentence_pinyin(["我", "的"]) == ["wo3", "de5"]
    assert text.sentence_pinyin(["嗯"]) is None  # n2: no vowel, espeak-ng cannot say it


def test_real_text_has_enough_distinct_sentences():
    sentences = text.extract_sentences(TEXT)
    joined = ["".join(words) for words in sentences]
    assert len(set(joined)) == len(joined) >= 10_000
    for chars in joined[:2000]:
        assert text.MIN_CHARS <= len(chars) <= text.MAX_CHARS
        assert all(text.is_chinese_char(c) for c in chars), chars


def test_speakers_distinct_for_every_size():
    for size in sc.SIZES.values():
        speakers = voices.make_speakers(size.speakers, seed=1)
        all_voices = [v for split in SPLITS for v in speakers[split]]
        assert len({v.variant for v in all_voices}) == len(all_voices)
        assert len({v.speaker_id for v in all_voices}) == len(all_voices)
        assert len(speakers["train"]) >= 8 and len(speakers["dev"]) >= 3 and len(speakers["test"]) >= 3
    with pytest.raises(voices.SpeakerError, match="only"):
        voices.make_speakers({"train": 100, "dev": 1, "test": 1}, seed=1)


def test_utterance_prosody_varies_around_the_speaker():
    voice = voices.make_speakers(sc.SIZES["tiny"].speakers, 1)["train"][0]
    rng = np.random.default_rng(0)
    prosodies = [voices.utterance_prosody(voice, rng) for _ in range(200)]
    rates = np.array([p.rate_wpm for p in prosodies])
    assert np.all(np.abs(rates - voice.rate_wpm) <= voice.rate_wpm * voices.UTT_RATE_JITTER + 1)
    assert len(set(rates)) > 10 and len({p.pitch for p in prosodies}) > 5


def test_espeak_failure_drops_only_its_utterance(tmp_path, small_text, monkeypatch):
    """A sentence espeak cannot say is named, its stale wav removed, and the speaker's others written."""
    sentences = text.extract_sentences(small_text)
    speakers = voices.make_speakers(MICRO.speakers, 3)
    plans = corpus.plan_corpus(sentences, MICRO, speakers, 3)
    voice = speakers["train"][0]
    mine = [p for p in plans if p.speaker_id == voice.speaker_id]
    victim = mine[0]
    stale = tmp_path / "wav" / "train" / voice.speaker_id / (victim.utt_id + ".wav")
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    real = corpus.render_utterance

    def fail_on_victim(plan, *args, **kwargs):
        if plan.utt_id == victim.utt_id:
            raise EspeakError("espeak-ng's phonemes do not match")
        return real(plan, *args, **kwargs)

    monkeypatch.setattr(corpus, "render_utterance", fail_on_victim)
    results, dropped = corpus._generate_speaker((str(tmp_path), voice, mine, 3))
    assert [utt for utt, _ in dropped] == [victim.utt_id]
    assert voice.espeak_voice in dropped[0][1] and "phonemes" in dropped[0][1]
    assert [r.utt_id for r in results] == [p.utt_id for p in mine[1:]]
    assert not stale.exists()
    assert all((tmp_path / "wav" / "train" / voice.speaker_id / (r.utt_id + ".wav")).exists() for r in results)
