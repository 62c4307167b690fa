"""fix_data_dir.sh: keeps utterances present in every per-utt file, reports what it dropped."""
import os

from utils_testkit import SMALL_CORPUS, make_data_dir, read_lines, write_lines


def test_fix_repairs_and_reports_counts(run_tool, tmp_path):
    data = tmp_path / "data"
    os.makedirs(data)
    # Unsorted on purpose. Ut: no audio; Uw: no transcript; U5: no speaker; U3: empty transcript.
    write_lines(data / "wav.scp", ["S2-U4 /w/4.wav", "S1-U1 /w/1.wav", "S1-U2 /w/2.wav", "S2-U3 /w/3.wav",
                                   "S3-U5 /w/5.wav", "S3-Uw /w/w.wav"])
    write_lines(data / "text", ["S1-U1 你 好", "S1-U2 再 见", "S2-U3", "S2-U4 谢 谢", "S3-U5 好 的",
                                "S3-Ut 多 余"])
    write_lines(data / "utt2spk", ["S1-U1 S1", "S1-U2 S1", "S2-U3 S2", "S2-U4 S2", "S3-Uw S3", "S3-Ut S3"])
    write_lines(data / "spk2utt", ["S9 nonsense"])
    # char_timestamps is filtered but not required: S1-U2 lacking it keeps S1-U2.
    write_lines(data / "char_timestamps", ["S1-U1 [[0, 60], [60, 120]]", "S2-U3 [[0, 60]]"])
    originals = {name: (data / name).read_bytes() for name in os.listdir(data)}

    result = run_tool("fix_data_dir.sh data")
    assert result.returncode == 0, result.stderr
    assert ("fix_data_dir.sh: data: 7 -> 3 utterances: 1 not in wav.scp (S3-Ut), 1 not in text (S3-Uw), "
            "1 not in utt2spk (S3-U5), 1 empty transcript (S2-U3)") in result.stderr

    kept = ["S1-U1", "S1-U2", "S2-U4"]
    assert [line.split()[0] for line in read_lines(data / "wav.scp")] == kept
    assert read_lines(data / "text") == ["S1-U1 你 好", "S1-U2 再 见", "S2-U4 谢 谢"]
    assert read_lines(data / "utt2spk") == ["S1-U1 S1", "S1-U2 S1", "S2-U4 S2"]
    assert read_lines(data / "spk2utt") == ["S1 S1-U1 S1-U2", "S2 S2-U4"]
    assert read_lines(data / "char_timestamps") == ["S1-U1 [[0, 60], [60, 120]]"]
    for name, content in originals.items():
        assert (data / ".backup" / name).read_bytes() == content
    assert run_tool("validate_data_dir.sh --no-feats data").returncode == 0


def test_many_drops_show_the_first_ids(run_tool, tmp_path):
    data = tmp_path / "data"
    make_data_dir(data, {f"S1-U{i}": ("S1", "字") for i in range(9)}, feats=True)
    # Feature extraction failed for 7 utterances (make_fbank writes fewer feats than wav.scp).
    write_lines(data / "feats.scp", read_lines(data / "feats.scp")[:2])
    write_lines(data / "utt2num_frames", read_lines(data / "utt2num_frames")[:2])
    result = run_tool("fix_data_dir.sh data")
    assert result.returncode == 0, result.stderr
    assert ("data: 9 -> 2 utterances: 7 not in feats.scp (first: S1-U2, S1-U3, S1-U4, S1-U5, S1-U6, ...)"
            in result.stderr)
    assert run_tool("validate_data_dir.sh data").returncode == 0


def test_malformed_lines_are_dropped_with_a_note(run_tool, tmp_path):
    data = tmp_path / "data"
    make_data_dir(data, SMALL_CORPUS)
    with open(data / "wav.scp", "ab") as f:
        f.write(b"S1-U1 /w/duplicate.wav\n")
    with open(data / "text", "ab") as f:
        f.write(b"S3-U6 \xff\n")
    write_lines(data / "utt2speed", ["S1-U1 0.9", "S1-U2 fast", "S2-U3 1.0", "S2-U4 1.1", "S3-U5 1.0"])
    result = run_tool("fix_data_dir.sh data")
    assert result.returncode == 0, result.stderr
    assert "data/wav.scp:6: duplicate key (1): S1-U1 (line 6) [line dropped]" in result.stderr
    assert "data/utt2speed:2: speed not a positive number (1): S1-U2 (line 2) [line dropped]" in result.stderr
    assert "data/text:6: line not valid UTF-8 (1): S3-U6 (line 6) [line dropped]" in result.stderr
    assert "data: 6 -> 4 utterances: 1 not in wav.scp (S3-U6), 1 bad line in utt2speed (S1-U2)" in result.stderr
    assert read_lines(data / "wav.scp")[0] == "S1-U1 /corpus/S1-U1.wav"  # the first line wins


def test_nothing_left_is_an_error_and_changes_nothing(run_tool, tmp_path):
    data = tmp_path / "data"
    make_data_dir(data, SMALL_CORPUS)
    write_lines(data / "text", ["X-1 无 关"])
    before = {name: (data / name).read_bytes() for name in os.listdir(data)}
    result = run_tool("fix_data_dir.sh data")
    assert result.returncode == 1
    assert "nothing changed" in result.stderr
    assert {name: (data / name).read_bytes() for name in os.listdir(data)} == before


def test_already_valid_dir_is_unchanged(run_tool, tmp_path):
    data = tmp_path / "data"
    make_data_dir(data, SMALL_CORPUS, feats=True)
    before = {name: (data / name).read_bytes() for name in os.listdir(data)}
    result = run_tool("fix_data_dir.sh data")
    assert result.returncode == 0, result.stderr
    assert "data: 5 -> 5 utterances (nothing dropped)" in result.stderr
    assert {name: (data / name).read_bytes() for name in before} == before
