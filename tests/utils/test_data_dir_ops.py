"""perturb_data_dir_speed.sh, combine_data.sh, subset_data_dir.sh, and the speaker-map converters."""
import os

from utils_testkit import SMALL_CORPUS, make_data_dir, read_lines, write_lines


def test_perturb_uses_kaldi_names_and_utt2speed(run_tool, tmp_path):
    make_data_dir(tmp_path / "train", SMALL_CORPUS, feats=True)
    write_lines(tmp_path / "train" / "char_timestamps", ["S1-U1 [[0, 60]]"])
    write_lines(tmp_path / "train" / "utt2dur", [f"{u} 1.80" for u in sorted(SMALL_CORPUS)])
    result = run_tool("perturb_data_dir_speed.sh 0.9 train train_sp0.9")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "train_sp0.9"
    assert read_lines(out / "wav.scp")[0] == "sp0.9-S1-U1 /corpus/S1-U1.wav"  # same audio file
    assert read_lines(out / "utt2speed") == [f"sp0.9-{u} 0.9" for u in sorted(SMALL_CORPUS)]
    assert read_lines(out / "text")[2] == "sp0.9-S2-U3 早 上 好"
    assert read_lines(out / "utt2spk")[0] == "sp0.9-S1-U1 sp0.9-S1"
    assert read_lines(out / "spk2utt") == ["sp0.9-S1 sp0.9-S1-U1 sp0.9-S1-U2", "sp0.9-S2 sp0.9-S2-U3 sp0.9-S2-U4",
                                          "sp0.9-S3 sp0.9-S3-U5"]
    assert read_lines(out / "utt2dur")[0] == "sp0.9-S1-U1 2.000"  # 0.9x speed: longer audio
    for stale in ("feats.scp", "utt2num_frames", "char_timestamps"):
        assert not (out / stale).exists()
    assert run_tool("validate_data_dir.sh --no-feats train_sp0.9").returncode == 0


def test_perturb_composes_speeds_and_rejects_bad_factors(run_tool, tmp_path):
    make_data_dir(tmp_path / "train", SMALL_CORPUS)
    assert run_tool("perturb_data_dir_speed.sh 1.1 train sp1").returncode == 0
    assert run_tool("perturb_data_dir_speed.sh 0.9 sp1 sp2").returncode == 0
    assert read_lines(tmp_path / "sp2" / "utt2speed")[0] == "sp0.9-sp1.1-S1-U1 0.99"
    bad = run_tool("perturb_data_dir_speed.sh fast train sp3")
    assert bad.returncode == 1 and "speed factor must be a positive number" in bad.stderr
    same = run_tool("perturb_data_dir_speed.sh 0.9 train train")
    assert same.returncode == 1 and "same directory" in same.stderr


def test_combine_merges_with_default_speed_and_regenerates_spk2utt(run_tool, tmp_path):
    make_data_dir(tmp_path / "train", SMALL_CORPUS, feats=True)
    assert run_tool("perturb_data_dir_speed.sh 0.9 train sp0.9").returncode == 0
    assert run_tool("perturb_data_dir_speed.sh 1.1 train sp1.1").returncode == 0
    result = run_tool("combine_data.sh train_sp train sp0.9 sp1.1")
    assert result.returncode == 0, result.stderr
    assert "train + sp0.9 + sp1.1 -> train_sp: 15 utterances" in result.stderr
    assert "feats.scp not combined" in result.stderr  # only train has features
    out = tmp_path / "train_sp"
    speeds = dict(line.split() for line in read_lines(out / "utt2speed"))
    assert len(speeds) == 15
    assert speeds["S1-U1"] == "1.0" and speeds["sp0.9-S1-U1"] == "0.9" and speeds["sp1.1-S3-U5"] == "1.1"
    wav_keys = [line.split()[0] for line in read_lines(out / "wav.scp")]
    assert wav_keys == sorted(wav_keys, key=str.encode)
    assert "S1 S1-U1 S1-U2" in read_lines(out / "spk2utt")
    assert "sp1.1-S2 sp1.1-S2-U3 sp1.1-S2-U4" in read_lines(out / "spk2utt")
    assert not (out / "feats.scp").exists()
    assert run_tool("validate_data_dir.sh --no-feats train_sp").returncode == 0


def test_combine_rejects_duplicate_ids(run_tool, tmp_path):
    make_data_dir(tmp_path / "a", {"S1-U1": ("S1", "一"), "S1-U2": ("S1", "二")})
    make_data_dir(tmp_path / "b", {"S1-U2": ("S1", "二"), "S2-U3": ("S2", "三")})
    result = run_tool("combine_data.sh c a b")
    assert result.returncode == 1
    assert "1 utterance id(s) in more than one source: S1-U2 (a and b)" in result.stderr
    assert not (tmp_path / "c").exists()


def test_subset_first_n_and_utt_list(run_tool, tmp_path):
    make_data_dir(tmp_path / "train", SMALL_CORPUS, feats=True)
    first = run_tool("subset_data_dir.sh --first 3 train first3")
    assert first.returncode == 0, first.stderr
    assert [line.split()[0] for line in read_lines(tmp_path / "first3" / "feats.scp")] == ["S1-U1", "S1-U2", "S2-U3"]
    assert read_lines(tmp_path / "first3" / "spk2utt") == ["S1 S1-U1 S1-U2", "S2 S2-U3"]
    assert run_tool("validate_data_dir.sh first3").returncode == 0

    write_lines(tmp_path / "list", ["S3-U5 extra fields are ignored", "S9-U9", "S1-U2"])
    listed = run_tool("subset_data_dir.sh --utt-list list train picked")
    assert listed.returncode == 0, listed.stderr
    assert "1 listed utterance(s) not in train, skipped: S9-U9" in listed.stderr
    assert read_lines(tmp_path / "picked" / "text") == ["S1-U2 再 见", "S3-U5 好 的"]
    assert read_lines(tmp_path / "picked" / "utt2num_frames") == ["S1-U2 101", "S3-U5 104"]

    too_many = run_tool("subset_data_dir.sh --first 6 train x")
    assert too_many.returncode == 1 and "train has 5 utterances" in too_many.stderr
    neither = run_tool("subset_data_dir.sh train x")
    assert neither.returncode == 1 and "give --first N or --utt-list FILE" in neither.stderr


def test_subset_removes_stale_files_of_an_earlier_run(run_tool, tmp_path):
    make_data_dir(tmp_path / "train", SMALL_CORPUS)
    make_data_dir(tmp_path / "out", SMALL_CORPUS, feats=True)  # an older, different dir
    assert run_tool("subset_data_dir.sh --first 2 train out").returncode == 0
    assert not os.path.exists(tmp_path / "out" / "feats.scp")
    assert run_tool("validate_data_dir.sh --no-feats out").returncode == 0


def test_speaker_map_converters(run_tool, tmp_path):
    write_lines(tmp_path / "utt2spk", ["B-1 B", "A-2 A", "A-1 A"])
    to_spk2utt = run_tool("utt2spk_to_spk2utt.py utt2spk")
    assert to_spk2utt.returncode == 0, to_spk2utt.stderr
    assert to_spk2utt.stdout.splitlines() == ["A A-1 A-2", "B B-1"]
    back = run_tool("utt2spk_to_spk2utt.py utt2spk | spk2utt_to_utt2spk.py")
    assert back.stdout.splitlines() == ["A-1 A", "A-2 A", "B-1 B"]
    write_lines(tmp_path / "spk2utt", ["A A-1 A-2", "B A-2"])
    clash = run_tool("spk2utt_to_utt2spk.py spk2utt")
    assert clash.returncode == 1 and "'A-2' is listed under speakers 'A' and 'B'" in clash.stderr
    write_lines(tmp_path / "bad_utt2spk", ["A-1 A", "A-1 B"])
    duplicate = run_tool("utt2spk_to_spk2utt.py bad_utt2spk")
    assert duplicate.returncode == 1 and "bad_utt2spk:2: duplicate key 'A-1'" in duplicate.stderr
