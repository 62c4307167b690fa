import pytest

from funasr_lite.data.datadir import DataDirError, read_kv, write_kv


def test_round_trip_sorted(tmp_path):
    p = tmp_path / "text"
    write_kv(p, {"b": "二 三", "a": "一"})
    assert p.read_text(encoding="utf-8") == "a 一\nb 二 三\n"
    assert read_kv(p) == {"a": "一", "b": "二 三"}


def test_duplicate_key_names_line(tmp_path):
    p = tmp_path / "wav.scp"
    p.write_text("u1 /a.wav\nu2 /b.wav\nu1 /c.wav\n")
    with pytest.raises(DataDirError, match=r"wav.scp:3: duplicate key 'u1' \(first at line 1\)"):
        read_kv(p)


def test_non_utf8_names_line(tmp_path):
    p = tmp_path / "text"
    p.write_bytes("u1 好\n".encode() + b"u2 \xff\xfe\n")
    with pytest.raises(DataDirError, match=r"text:2: not valid UTF-8"):
        read_kv(p)


def test_missing_value(tmp_path):
    p = tmp_path / "text"
    p.write_text("u1 好\nu2\n", encoding="utf-8")
    with pytest.raises(DataDirError, match=r"text:2: utterance 'u2' has no value"):
        read_kv(p)
    assert read_kv(p, allow_empty_value=True)["u2"] == ""


def test_atomic_write_has_normal_permissions(tmp_path):
    import os

    p = tmp_path / "utt2spk"
    write_kv(p, {"u": "s"})
    umask = os.umask(0)
    os.umask(umask)
    assert (p.stat().st_mode & 0o777) == (0o666 & ~umask)
