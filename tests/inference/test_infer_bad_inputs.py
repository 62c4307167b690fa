"""Skip, name, count: one infer run over a wav.scp of good, odd and broken files (issue 10's
"26-file case"), the failed list, the summary line, the exit status, --max_failures, --channel,
the merge of parallel jobs with failed lists, and the API on a list.

Independent references: the good files are also decoded alone (a run with nothing bad in it), and
a multichannel file must decode exactly as a mono file holding the mean (or the chosen channel)
of its channels, computed here with numpy from the samples scipy.io.wavfile reads.
"""

import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy
import scipy.io.wavfile
import soundfile

from funasr_lite.bin import infer as infer_cli
from funasr_lite.inference.speech2text import Speech2Text, items_from_wav_scp, merge_split_dirs
from funasr_lite.inference.model_dir import load_model_dir
from funasr_lite.inference.writers import read_1best_recog, read_failed
from funasr_lite.utils.failures import EXIT_SOME_FAILED, TooManyFailuresError
from test_infer import REPO_ROOT, SAMPLE_RATE, assert_same_results, synth_wave, write_model_dir, write_wav

SCIPY_DATA = os.path.join(os.path.dirname(scipy.__file__), "io", "tests", "data")

# key -> scipy test file that libsndfile decodes (odd widths, byte orders, containers, 2-5 channels)
SCIPY_GOOD = {
    "sc_float_2ch": "test-44100Hz-2ch-32bit-float-le.wav",
    "sc_float_be_2ch": "test-44100Hz-2ch-32bit-float-be.wav",
    "sc_double_wavex": "test-48000Hz-2ch-64bit-float-le-wavex.wav",
    "sc_int32_rf64": "test-44100Hz-le-1ch-4bytes-rf64.wav",
    "sc_int32_be": "test-44100Hz-be-1ch-4bytes.wav",
    "sc_u8_2ch": "test-8000Hz-le-2ch-1byteu.wav",
    "sc_ulaw": "test-8000Hz-le-1ch-1byte-ulaw.wav",
    "sc_24bit_3ch": "test-8000Hz-le-3ch-5S-24bit.wav",
    "sc_12bit_4ch": "test-8000Hz-le-4ch-9S-12bit.wav",
    "sc_5bit_5ch": "test-8000Hz-le-5ch-9S-5bit.wav",
}
# key -> (scipy test file, category, words the reason must hold)
SCIPY_BAD = {
    "sc_36bit": ("test-8000Hz-le-3ch-5S-36bit.wav", "corrupt", "unimplemented format"),
    "sc_45bit": ("test-8000Hz-le-3ch-5S-45bit.wav", "corrupt", "unimplemented format"),
    "sc_53bit": ("test-8000Hz-le-3ch-5S-53bit.wav", "corrupt", "unimplemented format"),
    "sc_64bit": ("test-8000Hz-le-3ch-5S-64bit.wav", "corrupt", "unimplemented format"),
    "sc_no_data": ("test-44100Hz-le-1ch-4bytes-early-eof-no-data.wav", "corrupt", "No 'data' chunk"),
    "sc_truncated": ("test-44100Hz-le-1ch-4bytes-early-eof.wav", "corrupt", "truncated: data chunk declares"),
}
GOOD_SECONDS = {"good_a": 1.7, "good_b": 0.9, "good_c": 2.4, "good_d": 1.2, "good_e": 0.6}


def scipy_samples(path):
    """(N, C) float64 in [-1, 1] as scipy.io.wavfile decodes the file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rate, data = scipy.io.wavfile.read(path)
    data = data.reshape(len(data), -1)
    if data.dtype.kind == "f":
        return rate, data.astype(np.float64)
    if data.dtype == np.uint8:
        return rate, (data.astype(np.float64) - 128.0) / 128.0
    return rate, data.astype(np.float64) / float(2 ** (8 * data.dtype.itemsize - 1))


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """The wav.scp of the 26-file case (and more), the model dir, and what each entry should give."""
    root = tmp_path_factory.mktemp("bad_inputs")
    audio = root / "audio"
    audio.mkdir()
    good = {}
    for i, (key, seconds) in enumerate(sorted(GOOD_SECONDS.items())):
        good[key] = write_wav(audio / f"{key}.wav", synth_wave(seconds, seed=20 + i))
    model_dir = write_model_dir(str(root / "model"), [soundfile.read(p, dtype="int16")[0] for p in good.values()])

    usable = dict(good)  # key -> wav.scp value, decoded
    stereo = np.stack([synth_wave(1.5, seed=30), synth_wave(1.5, seed=31)], axis=1)
    usable["stereo"] = write_wav(audio / "stereo.wav", stereo)
    usable["three_ch_8k"] = write_wav(audio / "three_ch_8k.wav",
                                      np.stack([synth_wave(1.1, seed=32 + c, sample_rate=8000) for c in range(3)], 1),
                                      sample_rate=8000)
    wav24 = str(audio / "pcm24.wav")
    soundfile.write(wav24, synth_wave(1.3, seed=35).astype(np.float64) / 32768.0, SAMPLE_RATE, subtype="PCM_24")
    usable["pcm24"] = wav24
    usable["piped"] = f"cat {good['good_b']} |"
    for key, name in SCIPY_GOOD.items():
        usable[key] = os.path.join(SCIPY_DATA, name)

    bad = {}  # key -> (wav.scp value, category, words in the reason)
    (audio / "empty.wav").write_bytes(b"")
    bad["empty_file"] = (str(audio / "empty.wav"), "corrupt", "cannot decode")
    (audio / "notes.wav").write_text("this is a text file, not audio\n" * 20)
    bad["text_file"] = (str(audio / "notes.wav"), "corrupt", "cannot decode")
    full = open(good["good_c"], "rb").read()
    (audio / "truncated.wav").write_bytes(full[: len(full) // 2])
    bad["truncated"] = (str(audio / "truncated.wav"), "corrupt", "truncated: data chunk declares")
    (audio / "header_only.wav").write_bytes(full[:44 - 8])  # RIFF + fmt, no data chunk
    bad["no_data_chunk"] = (str(audio / "header_only.wav"), "corrupt", "cannot decode")
    bad["missing"] = (str(audio / "not_there.wav"), "missing", "no such file")
    bad["a_directory"] = (str(audio), "missing", "is a directory")
    bad["failing_pipe"] = ("false |", "pipe_failed", "command exited with status 1")
    nan_wav = str(audio / "nan.wav")
    soundfile.write(nan_wav, np.full(8000, np.nan, dtype=np.float32), SAMPLE_RATE, subtype="FLOAT")
    bad["nan_samples"] = (nan_wav, "corrupt", "NaN")
    for key, (name, category, words) in SCIPY_BAD.items():
        bad[key] = (os.path.join(SCIPY_DATA, name), category, words)

    wav_scp = root / "wav.scp"
    entries = {**usable, **{key: value for key, (value, _, _) in bad.items()}}
    wav_scp.write_text("".join(f"{key} {entries[key]}\n" for key in sorted(entries)))
    good_scp = root / "good.scp"
    good_scp.write_text("".join(f"{key} {good[key]}\n" for key in sorted(good)))
    return {"root": root, "audio": audio, "model_dir": model_dir, "wav_scp": str(wav_scp), "good_scp": str(good_scp),
            "usable": usable, "bad": bad, "entries": entries, "stereo": stereo}


def run_infer(args):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, FUNASR_LITE_NO_PROGRESS="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "funasr_lite.bin.infer", *args], capture_output=True, text=True,
                          env=env, cwd=REPO_ROOT, timeout=600)


def test_one_run_decodes_every_usable_file_and_lists_the_others(case, tmp_path):
    assert len(case["entries"]) >= 26 and len(case["bad"]) >= 12 and len(case["usable"]) - len(GOOD_SECONDS) >= 10
    out = tmp_path / "decode"
    completed = run_infer(["--model_dir", case["model_dir"], "--wav_scp", case["wav_scp"], "--output_dir", str(out)])
    assert completed.returncode == EXIT_SOME_FAILED == 3, completed.stderr
    assert "Traceback" not in completed.stderr
    counts = "11 corrupt, 2 missing, 1 pipe failed"
    assert f"decoded {len(case['usable'])}, failed {len(case['bad'])} ({counts})" in completed.stderr
    for key, (value, category, _) in case["bad"].items():
        assert f"utterance {key} ({value}) skipped: {category}: " in completed.stderr  # one line names each

    recog = out / "1best_recog"
    results = {r["key"]: r for r in read_1best_recog(recog)}
    assert sorted(results) == sorted(case["usable"])  # every usable file, multichannel ones included
    failed = read_failed(recog / "failed")
    assert [f.key for f in failed] == sorted(case["bad"])  # input (wav.scp) order
    for failure in failed:
        value, category, words = case["bad"][failure.key]
        assert (failure.source, failure.category) == (value, category)
        assert words in failure.detail, failure
    lines = (recog / "failed").read_text().splitlines()
    assert all(len(line.split("\t")) == 3 for line in lines) and len(lines) == len(case["bad"])
    rtf_keys = [line.split()[0] for line in (recog / "rtf").read_text().splitlines()]
    assert rtf_keys == sorted(case["usable"]) + ["%TOTAL"]

    # The good files decode exactly as in a run with nothing bad in it.
    clean = tmp_path / "clean"
    assert infer_cli.main(["--model_dir", case["model_dir"], "--wav_scp", case["good_scp"],
                           "--output_dir", str(clean)]) == 0
    assert not os.path.exists(clean / "1best_recog" / "failed")
    clean_results = read_1best_recog(clean / "1best_recog")
    assert_same_results([results[r["key"]] for r in clean_results], clean_results)
    assert sum(len(r["token"]) for r in clean_results) >= 10  # not a vacuous comparison of empty outputs


def test_multichannel_default_is_the_channel_mean_and_channel_picks_one(case, tmp_path):
    loaded = load_model_dir(case["model_dir"])
    speech2text = Speech2Text(loaded)
    stereo = case["stereo"].astype(np.float64) / 32768.0
    mono = {"mean": stereo.mean(axis=1), "right": stereo[:, 1]}
    scp = tmp_path / "mono.scp"
    with open(scp, "w") as f:
        for name, samples in mono.items():
            path = str(tmp_path / f"{name}.wav")
            soundfile.write(path, samples.astype(np.float32), SAMPLE_RATE, subtype="FLOAT")
            f.write(f"{name} {path}\n")
    expected = {r["key"]: r for r in speech2text.decode(items_from_wav_scp(str(scp)))}
    assert expected["mean"]["token"] != expected["right"]["token"]  # the choice of channel shows

    stereo_scp = tmp_path / "stereo.scp"
    stereo_scp.write_text(f"mean {case['usable']['stereo']}\n")
    out_mean, out_right = tmp_path / "mean", tmp_path / "right"
    assert infer_cli.main(["--model_dir", case["model_dir"], "--wav_scp", str(stereo_scp),
                           "--output_dir", str(out_mean)]) == 0
    stereo_scp.write_text(f"right {case['usable']['stereo']}\n")
    assert infer_cli.main(["--model_dir", case["model_dir"], "--wav_scp", str(stereo_scp),
                           "--output_dir", str(out_right), "--channel", "1"]) == 0
    got = read_1best_recog(out_mean / "1best_recog") + read_1best_recog(out_right / "1best_recog")
    assert_same_results(got, [expected["mean"], expected["right"]])

    # A scipy 3-channel file: our mean equals numpy's mean of scipy's decoding.
    path = case["usable"]["three_ch_8k"]
    rate, samples = scipy_samples(path)
    mean_path = str(tmp_path / "three_mean.wav")
    soundfile.write(mean_path, samples.mean(axis=1).astype(np.float32), rate, subtype="FLOAT")
    assert_same_results(speech2text.decode(items_from_wav_scp(_scp(tmp_path / "a.scp", "x", path))),
                        speech2text.decode(items_from_wav_scp(_scp(tmp_path / "b.scp", "x", mean_path))))

    # A channel the file lacks is that file's failure, not the run's.
    out = tmp_path / "ch5"
    assert infer_cli.main(["--model_dir", case["model_dir"], "--wav_scp", case["wav_scp"], "--output_dir", str(out),
                           "--channel", "4"]) == EXIT_SOME_FAILED
    failed = {f.key: f for f in read_failed(out / "1best_recog" / "failed")}
    assert failed["stereo"].category == "multichannel" and "channel 4 requested but the file has 2" in \
        failed["stereo"].detail
    assert "sc_5bit_5ch" in {r["key"] for r in read_1best_recog(out / "1best_recog")}


def _scp(path, key, value):
    path.write_text(f"{key} {value}\n")
    return str(path)


def test_max_failures(case, tmp_path, caplog):
    out = tmp_path / "strict"
    num_bad = len(case["bad"])
    assert infer_cli.main(["--model_dir", case["model_dir"], "--wav_scp", case["wav_scp"], "--output_dir", str(out),
                           "--max_failures", "0"]) == 1
    assert not os.path.exists(out / "1best_recog")  # nothing written
    first_bad = sorted(case["bad"])[0]
    assert any(f"utterance {first_bad}" in r.getMessage() and "more than max_failures=0" in r.getMessage()
               for r in caplog.records if r.levelname == "ERROR")
    assert infer_cli.main(["--model_dir", case["model_dir"], "--wav_scp", case["wav_scp"], "--output_dir", str(out),
                           "--max_failures", str(num_bad - 1)]) == 1
    assert infer_cli.main(["--model_dir", case["model_dir"], "--wav_scp", case["wav_scp"], "--output_dir", str(out),
                           "--max_failures", str(num_bad)]) == EXIT_SOME_FAILED
    assert len(read_failed(out / "1best_recog" / "failed")) == num_bad
    # A later clean run into the same dir removes the stale failed list.
    assert infer_cli.main(["--model_dir", case["model_dir"], "--wav_scp", case["good_scp"],
                           "--output_dir", str(out)]) == 0
    assert sorted(os.listdir(out / "1best_recog")) == ["rtf", "score", "text", "time_stamp", "token"]


def test_merge_of_jobs_with_failed_lists(case, tmp_path):
    keys = sorted(case["entries"])
    split_dir = tmp_path / "split2"
    half = len(keys) // 2
    for job, part in ((1, keys[:half]), (2, keys[half:])):
        (split_dir / str(job)).mkdir(parents=True)
        (split_dir / str(job) / "wav.scp").write_text("".join(f"{k} {case['entries'][k]}\n" for k in part))
    single = tmp_path / "single"
    assert infer_cli.main(["--model_dir", case["model_dir"], "--wav_scp", case["wav_scp"],
                           "--output_dir", str(single)]) == EXIT_SOME_FAILED
    merge = ["--merge", str(split_dir), "--output_dir", str(tmp_path)]
    job1 = ["--model_dir", case["model_dir"], "--data_dir", str(split_dir / "1"), "--output_dir", str(split_dir / "1")]
    assert infer_cli.main(job1) == EXIT_SOME_FAILED
    assert infer_cli.main(merge) == 1  # job 2 has not run: refused, nothing written
    assert not os.path.exists(tmp_path / "1best_recog")
    assert infer_cli.main(["--model_dir", case["model_dir"], "--data_dir", str(split_dir / "2"),
                           "--output_dir", str(split_dir / "2")]) == EXIT_SOME_FAILED
    assert infer_cli.main(merge) == EXIT_SOME_FAILED
    for name in ("text", "token", "failed"):
        assert (tmp_path / "1best_recog" / name).read_text() == (single / "1best_recog" / name).read_text(), name
    # other batch mates change scores by float rounding only
    assert_same_results(read_1best_recog(tmp_path / "1best_recog"), read_1best_recog(single / "1best_recog"))

    # A job whose failed list names an utterance it was not given is refused, not merged.
    shutil.rmtree(tmp_path / "1best_recog")
    failed2 = split_dir / "2" / "1best_recog" / "failed"
    failed2.write_text(failed2.read_text() + "intruder\t/x.wav\tcorrupt: made up\n")
    with pytest.raises(Exception, match=r"split2/2: 1best_recog/failed has 1 utterances this job was not given: "
                                        r"intruder"):
        merge_split_dirs(split_dir, tmp_path)
    # A job killed before it wrote text (only a failed list) is a job that did not finish.
    failed2.write_text("")
    os.unlink(split_dir / "2" / "1best_recog" / "text")
    with pytest.raises(Exception, match=r"split2/2: missing 1best_recog/text"):
        merge_split_dirs(split_dir, tmp_path)
    assert not os.path.exists(tmp_path / "1best_recog")


def test_api_on_a_list_returns_errors_for_the_bad_items(case, tmp_path):
    from funasr_lite import SpeechRecognizer

    asr = SpeechRecognizer.from_model_dir(case["model_dir"])
    inputs = [case["usable"]["good_a"], case["bad"]["text_file"][0], case["usable"]["stereo"],
              str(case["audio"] / "nothing.wav"), case["usable"]["good_b"]]
    results = asr(inputs, output_dir=str(tmp_path))
    assert [r["key"] for r in results] == ["good_a", "notes", "stereo", "nothing", "good_b"]
    assert [("error" in r) for r in results] == [False, True, False, True, False]
    assert results[1]["error"].startswith("corrupt: ") and "notes.wav" in results[1]["error"]
    assert results[3]["error"].startswith("missing: ") and "no such file" in results[3]["error"]
    assert all("text" in r for r in results if "error" not in r)
    assert [f.key for f in read_failed(tmp_path / "1best_recog" / "failed")] == ["notes", "nothing"]
    assert [r["key"] for r in read_1best_recog(tmp_path / "1best_recog")] == ["good_a", "good_b", "stereo"]
    alone = asr(case["usable"]["stereo"])  # the same file alone, averaged the same way
    assert_same_results([results[2]], alone)
    # A wav.scp is many inputs too; max_failures=0 makes the first bad one raise.
    by_key = {r["key"]: r for r in asr(case["wav_scp"])}
    assert sorted(k for k, r in by_key.items() if "error" in r) == sorted(case["bad"])
    with pytest.raises(TooManyFailuresError, match="more than max_failures=0"):
        asr(case["wav_scp"], max_failures=0)
    with pytest.raises(Exception, match="notes.wav: cannot decode"):  # one input alone still raises
        asr(case["bad"]["text_file"][0])
    one_channel = asr(case["usable"]["stereo"], channel=1)
    assert one_channel[0]["key"] == "stereo" and "error" not in one_channel[0]


def test_failed_file_format_round_trip(tmp_path):
    from funasr_lite.inference.writers import write_1best_recog
    from funasr_lite.utils.failures import ItemFailure

    failures = [ItemFailure("b", "sox in\tx.flac -t wav - |", "pipe_failed", "exit 2\nsecond line"),
                ItemFailure("a", "/x/a.wav", "corrupt", "cannot decode: bad: header")]
    write_1best_recog(tmp_path, [{"key": "c", "text": "x", "token": ["x"], "score": -1.0}], failures)
    assert (tmp_path / "1best_recog" / "failed").read_text() == (
        "b\tsox in x.flac -t wav - |\tpipe_failed: exit 2 second line\n"  # input order; one line per item
        "a\t/x/a.wav\tcorrupt: cannot decode: bad: header\n")
    assert [(f.key, f.category, f.detail) for f in read_failed(tmp_path / "1best_recog" / "failed")] == [
        ("b", "pipe_failed", "exit 2 second line"), ("a", "corrupt", "cannot decode: bad: header")]
    with pytest.raises(ValueError, match="both decoded and failed"):
        write_1best_recog(tmp_path, [{"key": "a", "text": "x", "token": ["x"], "score": -1.0}], failures)
    (tmp_path / "bad_failed").write_text("only-a-key\n")
    with pytest.raises(Exception, match=r"bad_failed:1: expected 'utt_id<TAB>source<TAB>reason'"):
        read_failed(tmp_path / "bad_failed")
