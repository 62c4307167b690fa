"""The recipe's data stages (-1..2) end to end on the tiny synthetic corpus, in a copy of egs/aishell1."""

import json
import os
import shutil
import subprocess

import pytest

from funasr_lite.data.datadir import read_kv
from funasr_lite.frontend.cmvn import read_am_mvn
from recipe_copy import copy_recipe  # tests/recipe_copy.py


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, repo_root):
    work = tmp_path_factory.mktemp("aishell1")
    copy_recipe(work, repo_root)
    env = dict(os.environ, FUNASR_LITE_ROOT=repo_root, FUNASR_LITE_NO_PROGRESS="1")
    proc = subprocess.run(
        ["bash", "run.sh", "--stage", "-1", "--stop_stage", "2", "--corpus_size", "tiny", "--nj", "2"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return work, env


def test_data_dirs_are_complete_and_consistent(recipe):
    work, _ = recipe
    seen_text = {}
    for split in ("train", "dev", "test"):
        d = work / "data" / split
        wav = read_kv(d / "wav.scp")
        text = read_kv(d / "text")
        feats = read_kv(d / "feats.scp")
        frames = read_kv(d / "utt2num_frames")
        assert len(wav) > 0
        assert set(wav) == set(text) == set(feats) == set(frames)
        assert list(text) == sorted(text)
        # Stage 1 made the features with the training config's frontend_conf and recorded them.
        options = json.loads((d / "fbank.json").read_text())
        assert {k: options[k] for k in ("fs", "n_mels", "frame_length", "frame_shift", "window")} == {
            "fs": 16000, "n_mels": 80, "frame_length": 25.0, "frame_shift": 10.0, "window": "hamming"}
        assert f'"n_mels": 80' in (d / ".fbank.done").read_text()
        seen_text[split] = {t.replace(" ", "") for t in text.values()}
    # no sentence leaks from dev/test into train (transcript filtered per split)
    assert not (seen_text["train"] & seen_text["dev"])
    assert not (seen_text["train"] & seen_text["test"])


def test_cmvn_and_tokens(recipe):
    work, _ = recipe
    shift, scale = read_am_mvn(work / "data" / "train" / "am.mvn")
    assert shift.shape == (560,) and scale.shape == (560,)
    tokens = (work / "data" / "lang_char" / "tokens.txt").read_text(encoding="utf-8").split("\n")
    tokens = [t for t in tokens if t]
    assert tokens[:3] == ["<blank>", "<s>", "</s>"] and tokens[-1] == "<unk>"
    train_chars = set()
    for t in read_kv(work / "data" / "train" / "text").values():
        train_chars.update(t.replace(" ", ""))
    assert set(tokens[3:-1]) == train_chars


def test_rerun_of_feature_stage_is_a_noop(recipe):
    work, env = recipe
    before = (work / "data" / "test" / "feats.scp").stat().st_mtime_ns
    proc = subprocess.run(["bash", "run.sh", "--stage", "1", "--stop_stage", "1", "--corpus_size", "tiny"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "features exist" in proc.stderr
    assert (work / "data" / "test" / "feats.scp").stat().st_mtime_ns == before


TINY_MODEL = " ".join([
    "++encoder_conf.output_size=32", "++encoder_conf.linear_units=64", "++encoder_conf.num_blocks=2",
    "++decoder_conf.linear_units=64", "++decoder_conf.num_blocks=1", "++decoder_conf.att_layer_num=1",
    "++predictor_conf.idim=32", "++train_conf.max_epoch=2", "++dataset_conf.batch_bins=2000",
    "++dataset_conf.num_workers=0", "++train_conf.log_interval=2",
])
TINY_LM = "++lm_conf.embed_unit=16 ++lm_conf.att_unit=32 ++lm_conf.unit=64 ++lm_conf.layer=1 ++train_conf.max_epoch=1"


@pytest.fixture(scope="module")
def trained(recipe):
    """Stages 3..8 (LM, training, MWER, decoding, scoring, export) run once for the module: every
    test that needs exp/demo asks for this fixture, so each runs alone or in any order, and run
    together they share the one training."""
    work, env = recipe
    return subprocess.run(
        ["bash", "run.sh", "--stage", "3", "--stop_stage", "8", "--nj", "2", "--num_avg", "2",
         "--train_args", TINY_MODEL, "--lm_args", TINY_LM, "--mwer_epochs", "1"],
        cwd=work, env=env, capture_output=True, text=True, timeout=900,
    )


def test_train_decode_score_export_stages(recipe, trained):
    """Stages 3..8 wire together: LM, training, MWER, decoding (greedy, beam+LM), scoring, model dir, ONNX export."""
    work, _ = recipe
    proc = trained
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    exp = work / "exp" / "demo"
    assert (exp / "model.avg2.pt").is_file() and (exp / "train.done").is_file()
    assert (work / "exp" / "demo_mwer" / "model.avg1.pt").is_file()
    assert (work / "exp" / "lm" / "model.avg1.pt").is_file()  # the engine's final model (docs/training_engine.md)
    test_utts = set(read_kv(work / "data" / "test" / "text"))
    for mode in ("greedy", "beam_lm"):
        best = exp / f"decode_test_{mode}" / "1best_recog"
        for name in ("text", "token", "score", "time_stamp", "rtf"):
            assert (best / name).is_file(), best / name
        assert set(read_kv(best / "score")) == test_utts
        # Kaldi-style jobs: the set was split into two data dirs, each decoded on its own.
        parts = [set(read_kv(exp / f"decode_test_{mode}" / "split2" / str(j) / "feats.scp")) for j in (1, 2)]
        assert parts[0] and parts[1] and not parts[0] & parts[1] and parts[0] | parts[1] == test_utts
        for j, part in zip((1, 2), parts):
            assert set(read_kv(exp / f"decode_test_{mode}" / "split2" / str(j) / "1best_recog" / "score")) == part
        cer_line = (exp / f"decode_test_{mode}" / "cer.txt").read_text(encoding="utf-8")
        assert cer_line.startswith("%CER ")
    for name in ("config.yaml", "model.pt", "am.mvn", "tokens.txt", "model.onnx", "model_quant.onnx", "tokens.json"):
        assert (exp / "model_dir" / name).is_file(), name  # stage 8 with onnx_export=true (the default)


def test_decode_stage_goes_on_past_an_unreadable_utterance(recipe, trained):
    """Stage 6 with one utterance whose features cannot be read: the others are decoded and scored,
    the bad one is listed in 1best_recog/failed and named in a warning; run.sh still exits 0."""
    work, env = recipe
    assert trained.returncode == 0, "stages 3..8 failed: " + trained.stderr[-6000:]
    exp = work / "exp" / "demo"
    assert (exp / "model.avg2.pt").is_file()
    shutil.copytree(work / "data" / "test", work / "data" / "test_bad")
    scp = work / "data" / "test_bad" / "feats.scp"
    lines = scp.read_text(encoding="utf-8").splitlines()
    bad_key = lines[0].split()[0]
    lines[0] = f"{bad_key} {work / 'missing.ark'}:10"
    scp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.run(
        ["bash", "run.sh", "--stage", "6", "--stop_stage", "7", "--nj", "2", "--num_avg", "2",
         "--decode_sets", "test_bad", "--decode_modes", "greedy"],
        cwd=work, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    dec = exp / "decode_test_bad_greedy"
    failed = (dec / "1best_recog" / "failed").read_text(encoding="utf-8").splitlines()
    assert [line.split("\t")[0] for line in failed] == [bad_key]
    assert "1 utterance(s) of data/test_bad not decoded" in proc.stderr
    decoded = set(read_kv(dec / "1best_recog" / "score"))
    assert decoded == set(read_kv(work / "data" / "test" / "text")) - {bad_key}
    assert (dec / "cer.txt").read_text(encoding="utf-8").startswith("%CER ")


def test_streaming_recipe_trains_decodes_in_streaming_mode_and_exports(recipe):
    """conf/demo_streaming.yaml through stages 4..8: SCAMA training, stage 5 skipped, stage 6 in
    streaming mode (split jobs reading wav.scp, merged), scoring, the model dir with FunASR's
    streaming names and the online ONNX pair."""
    import yaml

    work, env = recipe
    proc = subprocess.run(
        ["bash", "run.sh", "--stage", "4", "--stop_stage", "8", "--nj", "2", "--num_avg", "2",
         "--train_config", "conf/demo_streaming.yaml", "--train_args", TINY_MODEL, "--decode_sets", "test"],
        cwd=work, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert "stage 5: skipped" in proc.stderr
    exp = work / "exp" / "demo_streaming"
    dec = exp / "decode_test_streaming"
    assert set(read_kv(dec / "1best_recog" / "score")) == set(read_kv(work / "data" / "test" / "text"))
    assert (dec / "cer.txt").read_text(encoding="utf-8").startswith("%CER ")
    assert (dec / "split2" / "1" / "latency.json").is_file() and (dec / "split2" / "1" / "partials.jsonl").is_file()
    config = yaml.safe_load((exp / "model_dir" / "config.yaml").read_text())
    assert (config["model"], config["encoder"], config["frontend"]) == (
        "ParaformerStreaming", "SANMEncoderChunkOpt", "WavFrontendOnline")
    for name in ("model.onnx", "decoder.onnx", "tokens.txt"):
        assert (exp / "model_dir" / name).is_file(), name


def test_an_8khz_recipe_resamples_trains_decodes_and_exports_at_8khz(recipe, tmp_path, repo_root):
    """conf/demo_8k.yaml in its own recipe dir (docs/recipe.md#8-khz) on the tiny corpus: stage 1
    resamples to 8 kHz before fbank (fbank.json says so), training, greedy decoding and scoring run,
    and the exported model dir is an 8 kHz one that decodes 8 kHz audio as it is."""
    import soundfile
    import yaml

    from funasr_lite.api import SpeechRecognizer
    from funasr_lite.frontend.audio import resample_waveform

    work, env = recipe
    work8k = tmp_path / "aishell1_8k"
    work8k.mkdir()
    for name in ("run.sh", "cmd.sh", "path.sh"):
        shutil.copy(work / name, work8k / name)
    for name in ("local", "conf"):
        shutil.copytree(work / name, work8k / name)
    os.symlink(os.path.join(repo_root, "utils"), work8k / "utils")
    os.symlink(work / "corpus", work8k / "corpus")
    common = ["--nj", "2", "--num_avg", "2", "--train_config", "conf/demo_8k.yaml", "--train_args", TINY_MODEL,
              "--decode_sets", "test", "--decode_modes", "greedy", "--onnx_export", "false"]
    for stages in (("0", "2"), ("4", "4"), ("6", "8")):
        proc = subprocess.run(["bash", "run.sh", "--stage", stages[0], "--stop_stage", stages[1], *common],
                              cwd=work8k, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    fbank = json.loads((work8k / "data" / "train" / "fbank.json").read_text())
    assert fbank["fs"] == 8000, fbank
    exp = work8k / "exp" / "demo_8k"
    assert (exp / "decode_test_greedy" / "cer.txt").read_text(encoding="utf-8").startswith("%CER ")
    config = yaml.safe_load((exp / "model_dir" / "config.yaml").read_text())
    assert config["frontend_conf"]["fs"] == 8000
    asr = SpeechRecognizer.from_model_dir(str(exp / "model_dir"))
    assert asr.sample_rate == 8000
    key, path = next(iter(read_kv(work8k / "data" / "test" / "wav.scp").items()))
    audio, rate = soundfile.read(path, dtype="float32")
    audio8k = resample_waveform(audio, rate, 8000)
    # the exported dir decodes the 8 kHz samples as they are: the same tokens as stage 6's 1best
    assert asr(audio8k, audio_fs=8000)[0]["text"].replace(" ", "") == asr(path)[0]["text"].replace(" ", "")


def test_the_commandword_recipe_makes_its_set_trains_decodes_scores_and_exports(recipe):
    """local/run_commandword.sh stages 0..5 on the tiny corpus's voices (a small set, a narrowed
    Paraformer-tiny for one epoch): 544-or-fewer tokens, command.txt per decoded set, the model dir
    with share_embedding, size.json."""
    import yaml

    work, env = recipe
    proc = subprocess.run(
        ["bash", "local/run_commandword.sh", "--corpus_size", "tiny", "--nj", "2", "--num_avg", "1",
         "--set_args", "--repeats train=1 dev=1 test=1 --others train=8 dev=2 test=3",
         "--train_args", "++encoder_conf.num_blocks=1 ++decoder_conf.num_blocks=1 ++train_conf.max_epoch=1"],
        cwd=work, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    data = work / "data" / "commandword"
    kinds = read_kv(data / "cmd_test" / "utt2kind")
    assert sorted(set(kinds.values())) == ["command", "near_miss", "other"]
    assert len((data / "lang_char" / "tokens.txt").read_text(encoding="utf-8").split("\n")) - 1 <= 544
    exp = work / "exp" / "commandword"
    for x in ("cmd_dev", "cmd_test"):
        scored = json.loads((exp / f"decode_{x}_greedy" / "command.json").read_text())
        assert scored["commands"] == list(read_kv(data / x / "utt2kind").values()).count("command")
        assert (exp / f"decode_{x}_greedy" / "1best_recog" / "rtf").is_file()
    config = yaml.safe_load((exp / "model_dir" / "config.yaml").read_text())
    assert config["model_conf"]["share_embedding"] is True
    size = json.loads((exp / "size.json").read_text())
    assert size["parameters"] > 0 and "decoder" in size["by_part"]
