"""Smoke tests of bench/benchmark_train.py and bench/benchmark_decode.py: each runs in its quickest
mode (tiny models, one step / one pass, one thread) and writes JSON with the expected fields.
No timing is asserted; the parity of the two implementations is what the match rates check."""

import json
import os
import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import torch
import yaml

from funasr_lite.frontend.cmvn import write_am_mvn
from funasr_lite.models import build_model

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKENS = ["<blank>", "<s>", "</s>", *"的一是了我不人在他有这个上们来到时大地为子中你说", "<unk>"]
LFR_DIM = 80 * 7


def tiny_config():
    """A SAN-M Paraformer small enough to train and decode in a second, LFR 7/6."""
    return {
        "model": "paraformer",
        "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1, "predictor_weight": 1.0, "predictor_bias": 1,
                       "sampling_ratio": 0.4},
        "encoder": "sanm",
        "encoder_conf": {"output_size": 32, "attention_heads": 4, "linear_units": 64, "num_blocks": 2,
                         "input_layer": "pe", "kernel_size": 5, "sanm_shfit": 0},
        "decoder": "paraformer_decoder_sanm",
        "decoder_conf": {"attention_heads": 4, "linear_units": 64, "num_blocks": 2, "att_layer_num": 2,
                         "kernel_size": 5, "sanm_shfit": 0},
        "predictor": "cif_predictor_v2",
        "predictor_conf": {"idim": 32, "threshold": 1.0, "l_order": 1, "r_order": 1, "tail_threshold": 0.45},
        "frontend_conf": {"fs": 16000, "window": "hamming", "n_mels": 80, "frame_length": 25, "frame_shift": 10,
                          "lfr_m": 7, "lfr_n": 6},
        "specaug": "specaug_lfr",
        "specaug_conf": {"apply_time_warp": False, "apply_freq_mask": True, "freq_mask_width_range": [0, 10],
                         "lfr_rate": 6, "num_freq_mask": 1, "apply_time_mask": True,
                         "time_mask_width_range": [0, 3], "num_time_mask": 1},
        "optim": "adam", "optim_conf": {"lr": 0.001},
        "train_conf": {"grad_clip": 5.0},
    }


@pytest.fixture(scope="module")
def setup_dirs(tmp_path_factory):
    """config.yaml, a data dir (random raw fbank, text, utt2num_frames) and a model dir (random weights)."""
    root = tmp_path_factory.mktemp("bench")
    config = tiny_config()
    config_path = root / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")

    rng = np.random.default_rng(0)
    data_dir = root / "data" / "test"
    data_dir.mkdir(parents=True)
    frames = {f"utt{i}": int(n) for i, n in enumerate([230, 170, 300, 120])}
    with kaldiio.WriteHelper(f"ark,scp:{data_dir / 'feats.ark'},{data_dir / 'feats.scp'}") as writer:
        for key, n in frames.items():
            writer(key, (rng.standard_normal((n, 80)) + 10.0).astype(np.float32))
    (data_dir / "utt2num_frames").write_text("".join(f"{k} {n}\n" for k, n in frames.items()))
    (data_dir / "text").write_text("".join(f"{k} {''.join(rng.choice(TOKENS[3:-1], 6))}\n" for k in frames),
                                   encoding="utf-8")
    lang_dir = root / "data" / "lang_char"
    lang_dir.mkdir()
    (lang_dir / "tokens.txt").write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    write_am_mvn(str(data_dir / "am.mvn"), np.full(LFR_DIM, -10.0), np.ones(LFR_DIM))

    model_dir = root / "model"
    model_dir.mkdir()
    torch.manual_seed(0)
    model = build_model({**config, "specaug": None, "input_size": LFR_DIM, "vocab_size": len(TOKENS)})
    with torch.no_grad():
        model.predictor.cif_output.bias.fill_(-0.8)  # fire every ~3 frames, so there are tokens to compare
    torch.save(model.state_dict(), model_dir / "model.pt")
    model_config = {k: v for k, v in config.items() if not k.startswith("specaug")}
    (model_dir / "config.yaml").write_text(yaml.safe_dump(model_config, allow_unicode=True), encoding="utf-8")
    (model_dir / "tokens.txt").write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    write_am_mvn(str(model_dir / "am.mvn"), np.full(LFR_DIM, -10.0), np.ones(LFR_DIM))
    return {"config": str(config_path), "data_dir": str(data_dir), "model_dir": str(model_dir), "root": root}


def run_script(name, args):
    env = dict(os.environ, OMP_NUM_THREADS="1", FUNASR_LITE_NO_PROGRESS="1")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "bench", name), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_benchmark_train_smoke(setup_dirs):
    # --data_dir mode (real features + tokens through AsrDataset); random features are the default.
    out = setup_dirs["root"] / "train.json"
    args = ["--config", setup_dirs["config"], "--data_dir", setup_dirs["data_dir"], "--steps", "1", "--warmup", "1",
            "--repeats", "1", "--threads", "1", "--batch_frames", "120", "--out", str(out)]
    stdout = run_script("benchmark_train.py", args)
    assert "ours / funasr" in stdout
    report = json.loads(out.read_text())
    assert report["environment"]["threads"] == 1 and report["environment"]["cpu_count"] >= 1
    assert report["environment"]["torch"] == torch.__version__ and report["environment"]["funasr"]
    assert report["features"] == setup_dirs["data_dir"] and report["vocab_size"] == len(TOKENS)
    assert report["timed_batches"]["count"] == 1 and report["timed_batches"]["frames"] > 0
    for impl in ("ours", "funasr"):
        row = report["results"][impl]
        assert len(row["runs"]) == 1 and row["runs"][0]["steps"] == 1
        assert row["frames_per_s"] > 0 and row["x_real_time"] == pytest.approx(row["frames_per_s"] * 0.06)
        assert row["peak_rss_mb"] > 0 and np.isfinite(row["runs"][0]["last_loss"])
    # The same weights were loaded into both (strict=True), so both models have the same size.
    assert report["results"]["ours"]["parameters"] == report["results"]["funasr"]["parameters"]
    assert report["throughput_ratio_ours_over_funasr"]["median_per_repeat"] > 0


def test_benchmark_decode_smoke(setup_dirs):
    out = setup_dirs["root"] / "decode.json"
    stdout = run_script("benchmark_decode.py", [
        "--model_dir", setup_dirs["model_dir"], "--data_dir", setup_dirs["data_dir"], "--max_utts", "3",
        "--large_config", setup_dirs["config"], "--threads", "1", "--repeats", "1", "--batch_utts", "2",
        "--ours_int8", "--out", str(out)])
    assert "speed-up" in stdout and "ours_int8" in stdout
    report = json.loads(out.read_text())
    assert report["environment"]["threads"] == [1] and report["environment"]["funasr"]
    rows = {(r["source"], r["mode"]): r for r in report["rows"]}
    assert set(rows) == {(s, m) for s in ("model_dir", "large") for m in ("batch1", "batched")}
    for (source, mode), row in rows.items():
        assert row["threads"] == 1
        for impl in ("ours", "funasr"):
            result = row[impl]
            assert result["utterances"] == 3 and result["audio_s"] > 0
            assert result["rtf"] == pytest.approx(result["seconds"][0] / result["audio_s"])
            assert result["peak_rss_mb"] > 0
        assert row["ours"]["mean_tokens"] > 0  # a vacuous comparison of empty outputs would prove nothing
        assert row["throughput_ratio_ours_over_funasr"] > 0
        # --ours_int8: a third implementation, our model with int8 dynamic Linear layers
        assert row["ours_int8"]["utterances"] == 3 and row["ours_int8"]["mean_tokens"] > 0
        assert row["throughput_ratio_ours_int8_over_funasr"] > 0 and 0.0 <= row["token_match_int8"] <= 1.0
        if mode == "batch1":
            # One utterance at a time, identical input and weights: the same argmax tokens.
            assert row["token_match"] == 1.0
        else:
            assert row["ours"]["batches"] < 3 and row["ours"]["match_own_batch1"] == 1.0
    # audio_s of the model dir comes from the raw frame count (10 ms each): 230 + 170 + 300 frames.
    assert rows["model_dir", "batch1"]["ours"]["audio_s"] == pytest.approx(7.0)


def test_benchmark_train_and_decode_cpu_bf16_smoke(setup_dirs):
    """--device cpu --precision bf16: both benchmarks run the forward under CPU bf16 autocast and say
    so in the report; an implementation that cannot run it (FunASR 1.4's CIF index_put mixes bf16 and
    fp32 there) gets its error in the report, not numbers, and the other still runs."""
    out = setup_dirs["root"] / "train_bf16.json"
    stdout = run_script("benchmark_train.py", ["--config", setup_dirs["config"], "--vocab_size", str(len(TOKENS)),
                                               "--batch_frames", "200", "--max_frames", "60", "--steps", "1",
                                               "--warmup", "1", "--repeats", "1", "--threads", "1",
                                               "--device", "cpu", "--precision", "bf16", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["precision"] == "bf16" and report["environment"]["precision"] == "bf16"
    assert report["environment"]["device"] == "cpu" and report["environment"]["device_name"]
    assert ", bf16," in stdout and report["results"]["ours"]["frames_per_s"] > 0
    funasr = report["results"]["funasr"]
    assert funasr.get("frames_per_s", 0) > 0 or funasr["error"]
    assert (report["throughput_ratio_ours_over_funasr"] is None) == ("error" in funasr)

    out = setup_dirs["root"] / "decode_bf16.json"
    run_script("benchmark_decode.py", ["--large_config", setup_dirs["config"], "--data_dir", "", "--max_utts", "2",
                                       "--batch_utts", "2", "--modes", "batched", "--threads", "1", "--repeats", "1",
                                       "--device", "cpu", "--precision", "bf16", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["environment"]["precision"] == "bf16" and report["modes"] == ["batched"]
    (row,) = report["rows"]
    assert row["precision"] == "bf16" and row["ours"]["rtf"] > 0 and row["ours"]["utterances"] == 2
    assert "match_own_batch1" not in row["ours"]  # no batch-1 pass to compare with
    assert row["funasr"].get("rtf", 0) > 0 or row["funasr"]["error"]
    assert (row["token_match"] is None) == ("error" in row["funasr"])


def run_hotword_benchmark(tmp_path, write_dir, extra=()):
    """bench/benchmark_hotwords.py on the dir ``write_dir(path, waves)`` makes, three wavs and a
    2-entry list; -> (stdout, report)."""
    import json

    sys.path.insert(0, os.path.join(REPO, "tests", "inference"))
    from test_infer import synth_wave, write_wav

    waves = [synth_wave(1.5 + i, seed=90 + i) for i in range(3)]
    model_dir = write_dir(str(tmp_path / "model"), waves)
    data = tmp_path / "data"
    data.mkdir()
    (data / "wav.scp").write_text("".join(f"u{i} {write_wav(tmp_path / f'u{i}.wav', w)}\n"
                                          for i, w in enumerate(waves)), encoding="utf-8")
    (tmp_path / "hw.txt").write_text("大你\n他们\n", encoding="utf-8")
    out = tmp_path / "hw.json"
    stdout = run_script("benchmark_hotwords.py", ["--model_dir", model_dir, "--data_dir", str(data), "--lists",
                                                  f"2={tmp_path / 'hw.txt'}", "--repeats", "2", *extra,
                                                  "--out", str(out)])
    report = json.loads(out.read_text())
    assert [row["hotwords"] for row in report["rows"]] == ["none", "2"]
    return stdout, report


def test_benchmark_hotwords_smoke(tmp_path):
    """A funasr-built SeACo dir: a row per list, ratios over the no-hotword decode."""
    sys.path.insert(0, os.path.join(REPO, "tests", "inference"))
    from test_hotword_model_dirs import write_seaco_dir

    stdout, report = run_hotword_benchmark(tmp_path, write_seaco_dir)
    assert report["rows"][0]["ratio"] == 1.0 and report["rows"][1]["ratio"] > 0
    assert "| none |" in stdout


def test_benchmark_hotwords_boost_smoke(tmp_path):
    """--boost: a plain Paraformer dir (no bias branch) decodes with beam search, the list boosted."""
    sys.path.insert(0, os.path.join(REPO, "tests", "inference"))
    from test_infer import write_model_dir

    _, report = run_hotword_benchmark(tmp_path, write_model_dir,
                                      ["--boost", "2.0", "--boost_topk", "10", "--beam_size", "3"])
    assert report["rows"][1]["ratio"] > 0 and report["args"]["boost"] == 2.0


def test_benchmark_hotwords_released_layout_builds_that_layout(tmp_path):
    """--released_layout: a random-weight SeACo of the released layout with the model dir's tokens
    and am.mvn (here the layout cut to 2 encoder / 2 decoder blocks, so the test stays small)."""
    import math

    import yaml

    sys.path.insert(0, os.path.join(REPO, "bench"))
    sys.path.insert(0, os.path.join(REPO, "tests", "inference"))
    import benchmark_hotwords
    from test_hotword_model_dirs import write_seaco_dir
    from test_infer import synth_wave

    from funasr_lite.inference.model_dir import load_model_dir

    with open(benchmark_hotwords.LARGE_CONFIG, encoding="utf-8") as f:
        large = yaml.safe_load(f)
    large["encoder_conf"]["num_blocks"] = 2
    large["decoder_conf"].update(num_blocks=2, att_layer_num=2)
    small = tmp_path / "large_cut.yaml"
    small.write_text(yaml.safe_dump(large), encoding="utf-8")
    source = write_seaco_dir(str(tmp_path / "seaco"), [synth_wave(1.5, seed=90)])
    built = benchmark_hotwords.released_layout_dir(source, None, str(tmp_path / "large"), str(small))
    loaded, original = load_model_dir(built), load_model_dir(source)
    model = loaded.model
    assert type(model).__name__ == "SeacoParaformer" and loaded.token_list == original.token_list
    assert model.encoder.output_size() == 512 and len(model.encoder.encoders) + len(model.encoder.encoders0) == 2
    assert len(model.seaco_decoder.decoders) == 6 and model.inner_dim == 512
    assert model.predictor.upsample_times == 3
    assert float(model.predictor.cif_output.bias.detach()) == pytest.approx(math.log(0.3 / 0.7))
