"""egs/finetune/local/make_heldout_set.py: a Kaldi data dir of espeak-ng CLI speech from review text."""

import os
import subprocess
import sys

import soundfile as sf

from funasr_lite.data.datadir import read_kv

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_makes_a_data_dir_from_review_runs(tmp_path):
    reviews = tmp_path / "pos.txt"
    reviews.write_text("这本书写得非常好，值得一读。www.example.com 服务态度很好！短\n"
                       "房间很干净，早餐也不错，下次还会再来住的。\n", encoding="utf-8")
    out = tmp_path / "heldout"
    subprocess.run([sys.executable, os.path.join(REPO, "egs", "finetune", "local", "make_heldout_set.py"), "--out", str(out),
                    "--num_utts", "3", "--num_speakers", "2", "--reviews", str(reviews)], check=True,
                   capture_output=True)
    text = read_kv(out / "text")
    wavs = read_kv(out / "wav.scp")
    assert set(text) == set(wavs) == set(read_kv(out / "utt2spk"))
    # Runs between punctuation of 6-25 Chinese characters only ("短" is too short, the URL is not Chinese).
    assert set(text.values()) == {"这本书写得非常好", "服务态度很好", "下次还会再来住的"}
    for path in wavs.values():
        info = sf.info(path)
        assert (info.samplerate, info.channels) == (16000, 1) and info.duration > 0.5
    speakers = read_kv(out / "spk2utt")
    assert len(speakers) == 2
    # Too few runs for the utterances asked: a clear error, not a traceback.
    result = subprocess.run([sys.executable, os.path.join(REPO, "egs", "finetune", "local", "make_heldout_set.py"), "--out",
                             str(tmp_path / "more"), "--num_utts", "4", "--reviews", str(reviews)],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "only 3 usable" in result.stderr
