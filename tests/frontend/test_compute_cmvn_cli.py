"""compute_cmvn CLI: streamed global statistics, am.mvn tiled for LFR, cmvn.json."""
import json
import logging

import kaldiio
import numpy as np

from funasr_lite.bin.compute_cmvn import main as compute_cmvn_main
from funasr_lite.frontend.cmvn import read_am_mvn


def write_feats(tmp_path):
    rng = np.random.RandomState(11)
    good = {f"utt{i}": rng.normal(3.0, 2.0, size=(t, 80)).astype(np.float32) for i, t in enumerate([40, 7, 93])}
    ark, scp = str(tmp_path / "feats.ark"), str(tmp_path / "feats.scp")
    kaldiio.save_ark(ark, dict(good, wrong_dim=np.zeros((5, 40), np.float32)), scp=scp)
    with open(scp, "a") as f:
        f.write(f"bad_offset {tmp_path}/feats.ark:999999\n")
        f.write(f"no_ark {tmp_path}/missing.ark:3\n")
    return scp, good


def test_am_mvn_is_tiled_global_stats_and_bad_entries_are_dropped(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    scp, good = write_feats(tmp_path)
    out_mvn, out_json = tmp_path / "am.mvn", tmp_path / "cmvn.json"
    rc = compute_cmvn_main(["--feats_scp", scp, "--out_mvn", str(out_mvn), "--out_json", str(out_json), "--lfr_m", "7"])
    assert rc == 0
    frames = np.concatenate(list(good.values())).astype(np.float64)
    shift, scale = read_am_mvn(out_mvn)
    assert shift.shape == (560,)
    np.testing.assert_allclose(shift, np.tile(-frames.mean(axis=0), 7), rtol=1e-6)
    np.testing.assert_allclose(scale, np.tile(1.0 / frames.std(axis=0), 7), rtol=1e-6)
    content = json.loads(out_json.read_text())
    assert content["frame_num"] == 140 and content["dim"] == 80 and len(content["mean"]) == 80
    messages = caplog.text
    assert "utt wrong_dim" in messages and "40-dim frames, expected 80" in messages
    assert "utt bad_offset" in messages and "utt no_ark" in messages
    assert "6 utterances, 3 used, 3 dropped: 2 unreadable, 1 dim mismatch" in messages


def test_no_usable_frames_fails(tmp_path):
    scp = tmp_path / "feats.scp"
    scp.write_text(f"a {tmp_path}/missing.ark:3\n")
    rc = compute_cmvn_main(["--feats_scp", str(scp), "--out_mvn", str(tmp_path / "am.mvn"),
                            "--out_json", str(tmp_path / "cmvn.json")])
    assert rc == 1 and not (tmp_path / "am.mvn").exists()
