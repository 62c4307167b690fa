"""split_scp.py: contiguous parts, sizes within one line, order kept; --utt2spk keeps speakers whole."""
from utils_testkit import read_lines, write_lines


def test_even_contiguous_split_keeps_order(run_tool, tmp_path):
    lines = [f"u{i:02d} /wav/{i}.wav" for i in range(10)]
    write_lines(tmp_path / "wav.scp", lines)
    result = run_tool("split_scp.py wav.scp out/1.scp out/2.scp out/3.scp")
    assert result.returncode == 0, result.stderr
    parts = [read_lines(tmp_path / f"out/{n}.scp") for n in (1, 2, 3)]
    assert [len(p) for p in parts] == [4, 3, 3]
    assert sum(parts, []) == lines


def test_as_many_parts_as_lines_and_too_many_parts(run_tool, tmp_path):
    write_lines(tmp_path / "wav.scp", ["a 1", "b 2", "c 3"])
    ok = run_tool("split_scp.py wav.scp p1 p2 p3")
    assert ok.returncode == 0, ok.stderr
    assert [read_lines(tmp_path / f"p{n}") for n in (1, 2, 3)] == [["a 1"], ["b 2"], ["c 3"]]
    too_many = run_tool("split_scp.py wav.scp q1 q2 q3 q4")
    assert too_many.returncode != 0
    assert "3 lines cannot be split into 4 parts" in too_many.stderr
    assert not (tmp_path / "q1").exists()


def test_utt2spk_keeps_speakers_whole_and_balances(run_tool, tmp_path):
    speakers = {"A": 3, "B": 1, "C": 4, "D": 2}  # 10 lines: best cut after B (4 | 6)
    utts = [(f"{spk}-{i}", spk) for spk, n in speakers.items() for i in range(n)]
    write_lines(tmp_path / "wav.scp", [f"{u} /w/{u}.wav" for u, _ in utts])
    write_lines(tmp_path / "utt2spk", [f"{u} {s}" for u, s in utts])
    result = run_tool("split_scp.py --utt2spk utt2spk wav.scp s1 s2")
    assert result.returncode == 0, result.stderr
    parts = [read_lines(tmp_path / name) for name in ("s1", "s2")]
    assert [len(p) for p in parts] == [4, 6]
    assert sum(parts, []) == read_lines(tmp_path / "wav.scp")
    part_speakers = [{line.split("-")[0] for line in p} for p in parts]
    assert part_speakers[0].isdisjoint(part_speakers[1])


def test_utt2spk_errors(run_tool, tmp_path):
    write_lines(tmp_path / "wav.scp", ["A-1 x", "B-1 x", "A-2 x"])
    write_lines(tmp_path / "utt2spk", ["A-1 A", "A-2 A", "B-1 B"])
    scattered = run_tool("split_scp.py --utt2spk utt2spk wav.scp s1 s2")
    assert scattered.returncode != 0 and "speaker 'A' are not contiguous" in scattered.stderr
    write_lines(tmp_path / "wav.scp", ["A-1 x", "A-2 x", "B-1 x"])
    too_many = run_tool("split_scp.py --utt2spk utt2spk wav.scp s1 s2 s3")
    assert too_many.returncode != 0 and "2 speakers cannot be split into 3 parts" in too_many.stderr
