"""Batch decoding (funasr_lite.inference.speech2text) and its CLI (funasr_lite.bin.infer).

The helpers at the top build a tiny model dir in FunASR's layout with random weights, and a few
synthetic utterances; test_api.py and test_funasr_model_dir.py import them from here.
"""

import copy
import math
import os
import shutil
import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import soundfile
import torch
import yaml

from funasr_lite.bin import infer as infer_cli
from funasr_lite.data.datadir import read_kv
from funasr_lite.inference.speech2text import (
    DecodeError,
    DecodeOptions,
    InputItem,
    Speech2Text,
    items_from_data_dir,
    items_from_wav_files,
    merge_split_dirs,
)
from funasr_lite.inference.model_dir import load_model_dir
from funasr_lite.inference.writers import read_1best_recog, read_scores
from funasr_lite.frontend.cmvn import write_am_mvn
from funasr_lite.frontend.fbank import compute_fbank
from funasr_lite.frontend.lfr import lfr_stack
from funasr_lite.models import build_model
from funasr_configs import tiny_paraformer_config  # tests/funasr_configs.py

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKENS = ["<blank>", "<s>", "</s>", *"的一是了我不人在他有这个上们来到时大地为子中你说", "<unk>"]
SAMPLE_RATE = 16000
# Predictor output bias: alphas near sigmoid(-0.8) ~ 0.3, so a random model emits a token
# every 3-4 LFR frames instead of almost none.
ALPHA_BIAS = -0.8


def tiny_config(ctc_weight=0.3, d_model=32):
    """A FunASR-schema config.yaml (SAN-M encoder/decoder, CIF v2, LFR 7/6, relative file names)."""
    return tiny_paraformer_config(d_model, heads=4, units=64, blocks=2, ctc_weight=ctc_weight, sample_rate=SAMPLE_RATE)


def synth_wave(seconds, seed, sample_rate=SAMPLE_RATE):
    """Speech-like int16 audio: a few gliding tones with syllable-rate envelopes, plus noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    wave = 0.003 * rng.standard_normal(n)
    for _ in range(4):
        f0 = rng.uniform(120, 1500)
        glide = rng.uniform(-200, 200)
        envelope = np.clip(np.sin(2 * np.pi * rng.uniform(2, 5) * t + rng.uniform(0, 6)), 0, None) ** 2
        wave += 0.12 * envelope * np.sin(2 * np.pi * (f0 + glide * t) * t)
    return np.round(np.clip(wave, -0.99, 0.99) * 32767).astype(np.int16)


def write_wav(path, samples, sample_rate=SAMPLE_RATE):
    soundfile.write(str(path), samples, sample_rate, subtype="PCM_16")
    return str(path)


def write_cmvn_from_waves(path, waves, lfr_m=7, lfr_n=6):
    """am.mvn from the LFR frames of the given int16 waves (so the features are well scaled)."""
    frames = []
    for samples in waves:
        fbank = compute_fbank(samples.astype(np.float32) / 32768.0)
        frames.append(lfr_stack(fbank, m=lfr_m, n=lfr_n)[0].numpy())
    frames = np.concatenate(frames).astype(np.float64)
    write_am_mvn(path, -frames.mean(0), 1.0 / np.maximum(frames.std(0), 1e-3))


def write_model_dir(path, cmvn_waves, seed=0, alpha_bias=ALPHA_BIAS, ctc_weight=0.3, tokens=TOKENS,
                    config_edits=None):
    """A FunASR-layout model dir with random weights built by funasr_lite: config.yaml,
    model.pt (plain state dict), am.mvn, tokens.txt. Returns the dir."""
    os.makedirs(path, exist_ok=True)
    config = tiny_config(ctc_weight)
    for key, value in (config_edits or {}).items():
        config[key] = value
    torch.manual_seed(seed)
    model = build_model({**copy.deepcopy(config), "input_size": 560, "vocab_size": len(tokens)})
    with torch.no_grad():
        model.predictor.cif_output.bias.fill_(alpha_bias)
    torch.save(model.state_dict(), os.path.join(path, "model.pt"))
    with open(os.path.join(path, "config.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, allow_unicode=True)
    with open(os.path.join(path, "tokens.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")
    write_cmvn_from_waves(os.path.join(path, "am.mvn"), cmvn_waves)
    return str(path)


UTTERANCE_SECONDS = {"utt_a": 2.3, "utt_b": 0.9, "utt_c": 1.6, "utt_d": 3.1, "utt_e": 0.5}


def write_corpus(path, seconds=UTTERANCE_SECONDS, with_feats=True):
    """wavs + a Kaldi data dir (wav.scp, and feats.scp of dither-0 fbank). Returns (data_dir, waves)."""
    wav_dir = os.path.join(path, "wav")
    data_dir = os.path.join(path, "data")
    os.makedirs(wav_dir, exist_ok=True)
    os.makedirs(data_dir, exist_ok=True)
    waves = {key: synth_wave(sec, seed=i) for i, (key, sec) in enumerate(sorted(seconds.items()))}
    with open(os.path.join(data_dir, "wav.scp"), "w") as f:
        for key, samples in waves.items():
            f.write(f"{key} {write_wav(os.path.join(wav_dir, key + '.wav'), samples)}\n")
    if with_feats:
        ark, scp = os.path.join(data_dir, "feats.ark"), os.path.join(data_dir, "feats.scp")
        with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
            for key, samples in waves.items():
                writer(key, compute_fbank(samples.astype(np.float32) / 32768.0).numpy())
    return data_dir, waves


def assert_same_results(ours, expected, score_tol=1e-4):
    assert [r["key"] for r in ours] == [r["key"] for r in expected]
    for a, b in zip(ours, expected):
        assert a["token"] == b["token"], a["key"]
        assert a["text"] == b["text"], a["key"]
        assert a["score"] == pytest.approx(b["score"], abs=score_tol, rel=score_tol), a["key"]
        if "timestamp" in a or "timestamp" in b:
            assert a["timestamp"] == b["timestamp"], a["key"]


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    data_dir, waves = write_corpus(str(root))
    return data_dir, waves


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, corpus):
    return write_model_dir(str(tmp_path_factory.mktemp("model")), corpus[1].values())


@pytest.fixture(scope="module")
def loaded(model_dir):
    return load_model_dir(model_dir)


def wav_scp_items(data_dir):
    return [InputItem(key, "audio", value) for key, value in read_kv(os.path.join(data_dir, "wav.scp")).items()]


# ---------------------------------------------------------------- decoding


def test_random_model_emits_several_tokens(loaded, corpus):
    """Guards the other tests against vacuous comparisons of empty hypotheses."""
    results = Speech2Text(loaded).decode(wav_scp_items(corpus[0]))
    assert all(len(r["token"]) >= 2 for r in results if r["key"] != "utt_e")
    assert sum(len(r["token"]) for r in results) >= 15
    for result in results:
        assert len(result["timestamp"]) == len(result["token"])
        assert result["token"] == [TOKENS[i] for i in result["token_int"]]
        assert result["text"] == "".join(result["token"])  # CJK characters join without spaces
        assert not {"<blank>", "<s>", "</s>"} & set(result["token"])


def test_utterance_decodes_the_same_alone_and_in_a_padded_batch(loaded, corpus):
    items = wav_scp_items(corpus[0])
    one_batch = Speech2Text(loaded, DecodeOptions(batch_bins=10**6))
    prepared = [one_batch.prepare(i, item) for i, item in enumerate(items)]
    assert len(one_batch._batches(prepared)) == 1  # really one padded batch of all five
    batched = one_batch.decode(items)
    alone = Speech2Text(loaded, DecodeOptions(batch_bins=1)).decode(items)
    two_per_batch = Speech2Text(loaded, DecodeOptions(batch_bins=110, bucket_size=3)).decode(items)
    assert_same_results(batched, alone)
    assert_same_results(two_per_batch, alone)
    assert [r["key"] for r in batched] == [item.key for item in items]  # input order kept


def test_feats_scp_and_wav_scp_give_the_same_results(loaded, corpus):
    data_dir = corpus[0]
    feats_items = items_from_data_dir(data_dir)
    assert {item.kind for item in feats_items} == {"feats"}  # feats.scp is preferred
    speech2text = Speech2Text(loaded)
    assert_same_results(speech2text.decode(feats_items), speech2text.decode(wav_scp_items(data_dir)))


def test_empty_short_and_silent_utterances_do_not_crash(loaded, corpus, tmp_path):
    empty = write_wav(tmp_path / "empty.wav", np.zeros(0, dtype=np.int16))
    short = write_wav(tmp_path / "short.wav", synth_wave(0.02, seed=3))  # 320 samples < one window
    silent = write_wav(tmp_path / "silent.wav", np.zeros(SAMPLE_RATE, dtype=np.int16))
    voiced = os.path.join(os.path.dirname(corpus[0]), "wav", "utt_a.wav")
    items = items_from_wav_files([empty, short, silent, voiced])
    results = Speech2Text(loaded, DecodeOptions(batch_bins=10**6)).decode(items)
    by_key = {r["key"]: r for r in results}
    for key in ("empty", "short"):
        assert by_key[key]["text"] == "" and by_key[key]["token"] == [] and by_key[key]["timestamp"] == []
        assert by_key[key]["score"] == 0.0
    assert by_key["short"]["audio_s"] == pytest.approx(0.02)
    assert len(by_key["silent"]["timestamp"]) == len(by_key["silent"]["token"])
    # The voiced utterance is unaffected by its empty and silent batch mates.
    alone = Speech2Text(loaded).decode(items_from_wav_files([voiced]))
    assert_same_results([by_key["utt_a"]], alone)


def test_model_that_predicts_no_tokens_gives_empty_hypotheses(tmp_path, corpus):
    mute_dir = write_model_dir(str(tmp_path / "mute"), corpus[1].values(), alpha_bias=-30.0)
    out = tmp_path / "decode"
    results = Speech2Text(load_model_dir(mute_dir)).decode(wav_scp_items(corpus[0]))
    assert all(r["token"] == [] and r["text"] == "" and r["timestamp"] == [] for r in results)
    assert infer_cli.main(["--model_dir", mute_dir, "--data_dir", corpus[0], "--output_dir", str(out)]) == 0
    with open(out / "1best_recog" / "text", encoding="utf-8") as f:
        assert f.read() == "".join(f"{key} \n" for key in sorted(UTTERANCE_SECONDS))


def test_utterance_longer_than_batch_bins_is_decoded_alone(loaded, corpus):
    items = wav_scp_items(corpus[0])
    speech2text = Speech2Text(loaded, DecodeOptions(batch_bins=30))
    prepared = [speech2text.prepare(i, item) for i, item in enumerate(items)]
    assert {u.key: u.num_frames for u in prepared} == {"utt_a": 38, "utt_b": 15, "utt_c": 27, "utt_d": 52, "utt_e": 8}
    assert [[u.key for u in batch] for batch in speech2text._batches(prepared)] == [
        ["utt_d"], ["utt_a"], ["utt_c"], ["utt_b", "utt_e"]]
    assert_same_results(speech2text.decode(items), Speech2Text(loaded).decode(items))


def test_utterance_longer_than_max_frames_is_refused_with_its_length(loaded, corpus):
    items = wav_scp_items(corpus[0])
    with pytest.raises(DecodeError, match=r"utterance utt_d is too long: 52 frames \(3.1 s\) > max_frames 40 "
                                          r"\(2 s\); split it"):
        Speech2Text(loaded, DecodeOptions(max_frames=40)).decode(items)


def test_beam_search_without_ctc_or_lm_is_the_best_allowed_path(loaded, corpus):
    """Independent check of the beam wiring: with only the AM, the best hypothesis takes at each
    position the best token other than <blank>/<s>, and </s> only at the last position."""
    items = wav_scp_items(corpus[0])
    results = Speech2Text(loaded, DecodeOptions(decode_mode="beam", beam_size=len(TOKENS))).decode(items)
    speech2text = Speech2Text(loaded)
    model = loaded.model
    for index, item in enumerate(items):
        feats = speech2text.prepare(index, item).model_input[None]
        lengths = torch.tensor([feats.shape[1]])
        with torch.no_grad():
            encoder_out, encoder_lengths = model.encode(feats, lengths)
            embeds, token_num, _, _ = model.calc_predictor(encoder_out, encoder_lengths)
            count = int(token_num.round())
            log_probs = model.decoder_log_probs(encoder_out, encoder_lengths, embeds, torch.tensor([count]))[0, :count]
        log_probs = log_probs.clone()
        log_probs[:, [0, 1]] = float("-inf")
        log_probs[:-1, 2] = float("-inf")
        best_scores, best_ids = log_probs.max(-1)
        expected = [TOKENS[i] for i in best_ids.tolist() if i != 2]
        assert results[index]["token"] == expected
        assert results[index]["score"] == pytest.approx(float(best_scores.sum()), abs=1e-4)


def test_beam_search_with_ctc_and_lm(loaded, corpus, tmp_path):
    from funasr_lite.models.lm import build_lm

    lm_config = {"lm": "transformer", "vocab_size": len(TOKENS),
                 "lm_conf": {"embed_unit": 16, "att_unit": 16, "head": 2, "unit": 32, "layer": 1}}
    lm_dir = tmp_path / "lm"
    lm_dir.mkdir()
    torch.manual_seed(1)
    torch.save(build_lm(lm_config).state_dict(), lm_dir / "model.pt")
    with open(lm_dir / "config.yaml", "w") as f:
        yaml.safe_dump(lm_config, f)
    items = wav_scp_items(corpus[0])[:3]
    options = DecodeOptions(decode_mode="beam", beam_size=4, ctc_weight=0.3, lm_weight=0.5, length_bonus=0.2,
                            lm_dir=str(lm_dir))
    results = Speech2Text(loaded, options).decode(items)
    for result in results:
        parts = result["scores"]
        assert result["score"] == pytest.approx(
            parts["am"] + 0.3 * parts["ctc"] + 0.5 * parts["lm"] + 0.2 * parts["length_bonus"], abs=1e-3)
        assert parts["lm"] < 0 and parts["ctc"] < 0
        assert parts["length_bonus"] == len(result["token"])
    # An LM over another vocabulary is refused before decoding.
    with open(lm_dir / "config.yaml", "w") as f:
        yaml.safe_dump({**lm_config, "vocab_size": len(TOKENS) + 1}, f)
    torch.save(build_lm({**lm_config, "vocab_size": len(TOKENS) + 1}).state_dict(), lm_dir / "model.pt")
    with pytest.raises(DecodeError, match="vocab_size 29 but the ASR model has 28 tokens"):
        Speech2Text(loaded, options)


def test_option_errors_are_named(loaded, tmp_path, corpus):
    with pytest.raises(DecodeError, match="ctc_weight=0.3 needs decode_mode beam"):
        Speech2Text(loaded, DecodeOptions(ctc_weight=0.3))
    with pytest.raises(DecodeError, match="lm_weight=0.5 needs an lm_dir"):
        Speech2Text(loaded, DecodeOptions(decode_mode="beam", lm_weight=0.5))
    no_ctc = load_model_dir(write_model_dir(str(tmp_path / "no_ctc"), corpus[1].values(), ctc_weight=0.0))
    with pytest.raises(DecodeError, match="has no CTC head"):
        Speech2Text(no_ctc, DecodeOptions(decode_mode="beam", ctc_weight=0.3))


def test_features_of_the_wrong_dimension_are_refused(loaded, tmp_path):
    ark, scp = str(tmp_path / "f.ark"), str(tmp_path / "feats.scp")
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
        writer("utt1", np.zeros((50, 40), dtype=np.float32))
    with pytest.raises(DecodeError, match=r"utterance utt1: features .* have shape \(50, 40\).*\(T, 80\)"):
        Speech2Text(loaded).decode(items_from_data_dir(str(tmp_path)))


# ---------------------------------------------------------------- CLI, jobs and merge


def read_recog(out_dir):
    recog = os.path.join(str(out_dir), "1best_recog")
    return {name: open(os.path.join(recog, name), encoding="utf-8").read()
            for name in sorted(os.listdir(recog)) if not name.startswith(".")}


def split_data(data_dir, nj, split_dir):
    """utils/split_data.sh, as the recipe runs it."""
    env = dict(os.environ, PATH=os.path.join(REPO_ROOT, "utils") + os.pathsep + os.environ["PATH"],
               PYTHONPATH=REPO_ROOT)
    return subprocess.run(["bash", os.path.join(REPO_ROOT, "utils", "split_data.sh"), str(data_dir), str(nj),
                           str(split_dir)], capture_output=True, text=True, env=env, timeout=120)


def test_split_data_parts_are_contiguous_complete_data_dirs(corpus, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(corpus[0], data_dir)
    (data_dir / "utt2spk").write_text("".join(f"{k} {k}\n" for k in sorted(UTTERANCE_SECONDS)))
    (data_dir / "fbank.json").write_text('{"n_mels": 80}\n')
    (data_dir / "split2" / "7").mkdir(parents=True)  # a part left by an earlier split into 7
    result = split_data(data_dir, 2, data_dir / "split2")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(data_dir / "split2")) == ["1", "2"]
    parts = [read_kv(data_dir / "split2" / str(j) / "feats.scp") for j in (1, 2)]
    assert [list(p) for p in parts] == [["utt_a", "utt_b", "utt_c"], ["utt_d", "utt_e"]]
    all_feats = read_kv(os.path.join(corpus[0], "feats.scp"))
    for j, part in zip((1, 2), parts):
        part_dir = data_dir / "split2" / str(j)
        assert all(all_feats[key] == value for key, value in part.items())
        assert list(read_kv(part_dir / "wav.scp")) == list(part)
        assert list(read_kv(part_dir / "spk2utt")) == list(part)  # one speaker per utterance here
        assert (part_dir / "fbank.json").read_text() == '{"n_mels": 80}\n'
    too_many = split_data(data_dir, 6, data_dir / "split6")
    assert too_many.returncode != 0 and "has 5 utterances: cannot split into 6 parts" in too_many.stderr


# Scores of a split decode vs one job: equal up to float rounding. A job decodes its utterances in
# other batches (other padding, other batch size), which changes the order of the float32 sums in
# the encoder and decoder, so a score may differ in its last bits on some CPUs (an AVX-512 EPYC gave
# -10.072047233581543 where the single job gave -10.072046279907227, 1 float32 ulp). A relative
# 1e-5 is ~100 ulps at that size, and a real difference (another token, another path, padding
# leaking into an utterance) moves a log-probability by far more: text and token stay exact.
SCORE_RTOL, SCORE_ATOL = 1e-5, 1e-6


def score_mismatches(expected, actual):
    """Keys whose scores differ beyond float rounding (or that only one side has), sorted."""
    keys = sorted(set(expected) | set(actual))
    return [k for k in keys if k not in expected or k not in actual
            or not math.isclose(expected[k], actual[k], rel_tol=SCORE_RTOL, abs_tol=SCORE_ATOL)]


def test_score_comparison_allows_rounding_and_catches_real_differences():
    # the two machines' scores of one utterance (issue #20): equal up to rounding
    assert score_mismatches({"u": -10.072046279907227}, {"u": -10.072047233581543}) == []
    # a difference of 1e-3 in one utterance, a missing or an extra utterance are all caught
    assert score_mismatches({"u": -10.072046, "v": -3.5}, {"u": -10.073046, "v": -3.5}) == ["u"]
    assert score_mismatches({"u": -1.0, "v": -2.0}, {"u": -1.0}) == ["v"]
    assert score_mismatches({"u": -1.0}, {"u": -1.0, "w": -2.0}) == ["w"]


def test_split_decode_and_merge_equal_a_single_job(model_dir, corpus, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(corpus[0], data_dir)
    (data_dir / "utt2spk").write_text("".join(f"{k} {k}\n" for k in sorted(UTTERANCE_SECONDS)))
    single, split = tmp_path / "single", tmp_path / "split"
    assert infer_cli.main(["--model_dir", model_dir, "--data_dir", str(data_dir), "--output_dir", str(single)]) == 0
    split_dir = split / "split2"
    assert split_data(data_dir, 2, split_dir).returncode == 0
    job1 = ["--model_dir", model_dir, "--data_dir", str(split_dir / "1"), "--output_dir", str(split_dir / "1")]
    assert infer_cli.main(job1) == 0
    job1_keys = [r["key"] for r in read_1best_recog(split_dir / "1" / "1best_recog")]
    assert job1_keys == ["utt_a", "utt_b", "utt_c"]
    merge = ["--merge", str(split_dir), "--output_dir", str(split)]
    assert infer_cli.main(merge) == 1  # job 2 has not run: refused, nothing written
    assert not os.path.exists(split / "1best_recog")
    assert infer_cli.main(["--model_dir", model_dir, "--data_dir", str(split_dir / "2"),
                           "--output_dir", str(split_dir / "2")]) == 0
    assert infer_cli.main(merge) == 0
    single_files, merged_files = read_recog(single), read_recog(split)
    assert sorted(merged_files) == ["rtf", "score", "text", "time_stamp", "token"]
    for name in ("text", "token", "time_stamp"):
        assert merged_files[name] == single_files[name], name
    single_scores = read_scores(os.path.join(single, "1best_recog", "score"))
    merged_scores = read_scores(os.path.join(split, "1best_recog", "score"))
    assert list(merged_scores) == list(single_scores) == sorted(UTTERANCE_SECONDS)
    assert score_mismatches(single_scores, merged_scores) == []
    # the same comparison refuses a merged score that moved by a real amount
    moved = dict(merged_scores, utt_c=merged_scores["utt_c"] - 0.01)
    assert score_mismatches(single_scores, moved) == ["utt_c"]
    rtf_keys = [line.split()[0] for line in merged_files["rtf"].splitlines()]
    assert rtf_keys == sorted(UTTERANCE_SECONDS) + ["%TOTAL"]
    # A job that decoded another part than its own is named, not merged.
    shutil.rmtree(split / "1best_recog")
    shutil.copytree(split_dir / "1" / "1best_recog", split_dir / "2" / "1best_recog", dirs_exist_ok=True)
    with pytest.raises(Exception, match=r"split2/2: 1best_recog/text lacks 2 utterances: utt_d, utt_e"):
        merge_split_dirs(split_dir, split)
    assert not os.path.exists(split / "1best_recog")
    # The recipe runs the same split-decode-merge steps with nj=1.
    one_split = tmp_path / "one_job" / "split1"
    assert split_data(data_dir, 1, one_split).returncode == 0
    assert infer_cli.main(["--model_dir", model_dir, "--data_dir", str(one_split / "1"),
                           "--output_dir", str(one_split / "1")]) == 0
    assert infer_cli.main(["--merge", str(one_split), "--output_dir", str(tmp_path / "one_job")]) == 0
    assert read_recog(tmp_path / "one_job")["text"] == single_files["text"]


def test_cli_entry_point_prints_key_and_text(model_dir, corpus, loaded):
    wav = os.path.join(os.path.dirname(corpus[0]), "wav", "utt_b.wav")
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, FUNASR_LITE_NO_PROGRESS="1")
    completed = subprocess.run(
        [sys.executable, "-m", "funasr_lite.bin.infer", "--model_dir", model_dir, "--wav", wav, "--device", "cpu"],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    expected = Speech2Text(loaded).decode(items_from_wav_files([wav]))[0]
    assert completed.stdout == f"utt_b {expected['text']}\n"


def test_cli_reports_a_bad_model_dir(tmp_path, corpus, capsys):
    assert infer_cli.main(["--model_dir", str(tmp_path), "--data_dir", corpus[0]]) == 1


def test_decode_log_reports_rtf_and_peak_memory(model_dir, corpus, tmp_path, caplog):
    import logging
    import re

    with caplog.at_level(logging.INFO, logger="funasr_lite.inference.speech2text"):
        assert infer_cli.main(["--model_dir", model_dir, "--data_dir", corpus[0], "--output_dir", str(tmp_path)]) == 0
    line = next(r.getMessage() for r in caplog.records if "peak RSS" in r.getMessage())
    rss_mb = float(re.search(r"peak RSS (\d+) MB", line).group(1))
    assert "RTF" in line and 50 < rss_mb < 100000  # torch alone keeps well over 50 MB resident
