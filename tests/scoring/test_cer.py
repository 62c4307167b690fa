"""CER scoring: hand examples, Kaldi-style report files, the compute_cer CLI, and every report
counted from one alignment (Kaldi's tie-breaking)."""

import logging
import random
import re

import jiwer
import pytest

from funasr_lite.bin import compute_cer as compute_cer_cli
from funasr_lite.scoring.cer import align_sequences, char_errors, compute_cer, error_report_lines, per_utt_lines, text_to_chars
from funasr_lite.scoring.decode_dir import score_decode_dir

REFS = {"u1": "今天 天气 好", "u2": "我们 走", "u3": "你好"}
# u1: 气 -> 汽 substituted, 啊 inserted; u2: 们 deleted; u3: no hypothesis (2 deletions);
# u4: no reference
HYPS = {"u1": "今天天汽好啊", "u2": "我 走", "u4": "多余"}


def test_text_to_chars_drops_all_whitespace():
    assert text_to_chars(" 今天 天气\t好 ") == ["今", "天", "天", "气", "好"]


def test_alignment_hand_example():
    ops = [(p.op, p.ref_index, p.hyp_index) for p in align_sequences(list("abcd"), list("axcde"))]
    assert ops == [("C", 0, 0), ("S", 1, 1), ("C", 2, 2), ("C", 3, 3), ("I", None, 4)]
    ops = [p.op for p in align_sequences(list("abcd"), list("ad"))]
    assert ops == ["C", "D", "D", "C"]
    # equal-cost alternatives (S S vs D C I): the substitution path is taken
    assert [p.op for p in align_sequences(list("ab"), list("ba"))] == ["S", "S"]
    assert [p.op for p in align_sequences([], list("ab"))] == ["I", "I"]
    assert [p.op for p in align_sequences(list("ab"), [])] == ["D", "D"]


def test_alignment_breaks_ties_as_kaldi():
    # Kaldi's LevenshteinAlignment traces back from the end preferring match/substitution, then
    # deletion, then insertion (hand-traced on the cost tables):
    # aab vs ab: b C, a C, then the first a is deleted
    assert [p.op for p in align_sequences(list("aab"), list("ab"))] == ["D", "C", "C"]
    # ab vs aab: the first a is inserted
    assert [p.op for p in align_sequences(list("ab"), list("aab"))] == ["I", "C", "C"]
    # ab vs bc: S S (cost 2) rather than D C I (cost 2)
    assert [p.op for p in align_sequences(list("ab"), list("bc"))] == ["S", "S"]
    # abc vs bcd: D C C I (cost 2) beats S S S (cost 3)
    assert [p.op for p in align_sequences(list("abc"), list("bcd"))] == ["D", "C", "C", "I"]


def test_char_errors_by_hand():
    assert char_errors("a b c", "abd") == (1, 3)
    assert char_errors("abc", "") == (3, 3)
    assert char_errors("甚至 出现", "甚至出现了") == (1, 4)
    assert char_errors("", "x") == (1, 0)
    assert char_errors("ab", "ba") == (2, 2)


def test_trainer_validation_cer_is_the_scoring_function():
    from funasr_lite.train.tasks import asr

    assert asr.char_errors is char_errors


def _read_reports(out_dir):
    cer = (out_dir / "cer.txt").read_text(encoding="utf-8")
    match = re.fullmatch(r"%CER \S+ \[ (\d+) / (\d+), (\d+) ins, (\d+) del, (\d+) sub \]\n", cer)
    assert match, cer
    errors, _, ins, dels, subs = (int(g) for g in match.groups())
    csid = [0, 0, 0, 0]  # Kaldi's #csid order: correct, substitutions, insertions, deletions
    for line in (out_dir / "per_utt").read_text(encoding="utf-8").splitlines():
        if line.split()[1] == "#csid":
            csid = [a + int(b) for a, b in zip(csid, line.split()[2:])]
    return (errors, subs, ins, dels), csid


def test_ab_vs_ba_is_two_substitutions_in_every_report(tmp_path):
    write(tmp_path / "ref", ["u1 ab"])
    write(tmp_path / "hyp", ["u1 ba"])
    out_dir = tmp_path / "out"
    score_decode_dir(tmp_path / "ref", tmp_path / "hyp", out_dir)
    assert (out_dir / "cer.txt").read_text(encoding="utf-8") == "%CER 100.00 [ 2 / 2, 0 ins, 0 del, 2 sub ]\n"
    assert (out_dir / "per_utt").read_text(encoding="utf-8").splitlines() == [
        "u1 ref a b", "u1 hyp b a", "u1 op  S S", "u1 #csid 0 2 0 0"]
    errors = (out_dir / "errors.txt").read_text(encoding="utf-8")
    assert "     1  a -> b\n     1  b -> a\n" in errors
    assert "DELETIONS (top 20): count ref\n\nINSERTIONS (top 20): count hyp\n" in errors


def test_cer_totals_are_the_per_utt_sums_on_random_pairs(tmp_path):
    rng = random.Random(9)
    refs, hyps = {}, {}
    for i in range(300):
        ref = "".join(rng.choice("abcd") for _ in range(rng.randint(1, 12)))
        hyp = list(ref)
        for _ in range(rng.randint(0, 5)):  # random edits, often creating equal-cost alternatives
            where = rng.randint(0, len(hyp))
            kind = rng.choice("sdi")
            if kind == "i" or not hyp:
                hyp.insert(where, rng.choice("abcde"))
            elif kind == "s":
                hyp[min(where, len(hyp) - 1)] = rng.choice("abcde")
            else:
                del hyp[min(where, len(hyp) - 1)]
        refs[f"utt{i:03d}"], hyps[f"utt{i:03d}"] = ref, "".join(hyp)
    write(tmp_path / "ref", [f"{k} {v}" for k, v in refs.items()])
    write(tmp_path / "hyp", [f"{k} {v}" for k, v in hyps.items()])
    result = score_decode_dir(tmp_path / "ref", tmp_path / "hyp", tmp_path / "out")
    (errors, subs, ins, dels), (_, per_utt_s, per_utt_i, per_utt_d) = _read_reports(tmp_path / "out")
    assert (subs, ins, dels) == (per_utt_s, per_utt_i, per_utt_d)
    assert errors == subs + dels + ins
    assert subs > 0 and dels > 0 and ins > 0
    # the error lists of errors.txt (all of them, not only the top 20) sum to the same totals
    lines = error_report_lines(result, top=10**6)
    sections = {}
    for line in lines:
        if line.endswith(("ref -> hyp", "count ref", "count hyp")):
            current = sections.setdefault(line.split()[0], [])
        elif line.strip() and sections:
            current.append(int(line.split()[0]))
    assert (sum(sections["SUBSTITUTIONS"]), sum(sections["DELETIONS"]), sum(sections["INSERTIONS"])) == (subs, dels, ins)
    # the error count is the edit distance, as an independent implementation computes it
    oracle = jiwer.process_words([" ".join(refs[k]) for k in sorted(refs)],
                                 [" ".join(hyps[k]) for k in sorted(refs)])
    assert errors == oracle.substitutions + oracle.deletions + oracle.insertions
    # and the trainer's validation count agrees utterance by utterance
    assert errors == sum(char_errors(refs[k], hyps[k])[0] for k in refs)


def test_alignment_error_count_matches_jiwer_on_random_strings():
    rng = random.Random(0)
    for _ in range(200):
        ref = [rng.choice("abcd") for _ in range(rng.randint(0, 12))]
        hyp = [rng.choice("abcde") for _ in range(rng.randint(0, 12))]
        ours = sum(p.op != "C" for p in align_sequences(ref, hyp))
        if not ref:
            assert ours == len(hyp)
            continue
        theirs = jiwer.process_words(" ".join(ref), " ".join(hyp) if hyp else "")
        assert ours == theirs.substitutions + theirs.deletions + theirs.insertions


def test_cer_hand_example_with_missing_and_extra_hypotheses(caplog):
    with caplog.at_level(logging.WARNING):
        result = compute_cer(REFS, HYPS)
    # 10 reference chars (spaces removed); 1 sub, 1 + 2 del, 1 ins
    assert (result.num_ref_chars, result.substitutions, result.deletions, result.insertions) == (10, 1, 3, 1)
    assert result.cer_line() == "%CER 50.00 [ 5 / 10, 1 ins, 3 del, 1 sub ]"
    assert result.missing_hyp_utts == ["u3"]
    assert result.extra_hyp_utts == ["u4"]
    assert [u.key for u in result.utts] == ["u1", "u2", "u3"]
    assert [u.csid for u in result.utts] == [(4, 1, 1, 0), (2, 0, 0, 1), (0, 0, 0, 2)]  # C S I D
    assert "u4" in caplog.text and "u3" in caplog.text


def test_spaces_do_not_count():
    result = compute_cer({"a": "今 天 好"}, {"a": "今天  好"})
    assert result.cer_line() == "%CER 0.00 [ 0 / 3, 0 ins, 0 del, 0 sub ]"


def test_cer_line_rounds_to_two_decimals():
    result = compute_cer({"a": "一二三四五六"}, {"a": "一二三四五"})
    assert result.cer_line() == "%CER 16.67 [ 1 / 6, 0 ins, 1 del, 0 sub ]"


def test_per_utt_lines_hand_example():
    u1, _, u3 = compute_cer(REFS, HYPS).utts
    # CJK characters are 2 columns wide, *** is 3: columns are padded to the widest cell
    assert per_utt_lines(u1) == [
        "u1 ref 今 天 天 气 好 ***",
        "u1 hyp 今 天 天 汽 好 啊",
        "u1 op  C  C  C  S  C  I",
        "u1 #csid 4 1 1 0",
    ]
    assert [line.split()[2:] for line in per_utt_lines(u3)] == [
        ["你", "好"], ["***", "***"], ["D", "D"], ["0", "0", "0", "2"]]


def test_csid_line_is_kaldis_order_correct_substitutions_insertions_deletions(tmp_path):
    # Kaldi's wer_per_utt_details.pl prints "#csid C S I D" (insertions BEFORE deletions), e.g.
    # its own example "ref w-A <eps> w-B w-C w-D w-E / hyp w-A w-A w-B <eps> w-D w-X" -> "#csid 3 1 1 1".
    # Insertion and deletion counts differ in every utterance here, so a swapped order shows.
    write(tmp_path / "ref", ["u1 abc", "u2 abcde", "u3 abcd"])
    write(tmp_path / "hyp", ["u1 xabcy", "u2 ace", "u3 azcdee"])
    out_dir = tmp_path / "out"
    score_decode_dir(tmp_path / "ref", tmp_path / "hyp", out_dir)
    csid = [line for line in (out_dir / "per_utt").read_text(encoding="utf-8").splitlines()
            if line.split()[1] == "#csid"]
    # u1: 2 insertions (x, y); u2: 2 deletions (b, d); u3: 1 substitution (b -> z), 2 insertions (e e)
    assert csid == ["u1 #csid 3 0 2 0", "u2 #csid 3 0 0 2", "u3 #csid 3 1 2 0"]
    # cer.txt's totals name each count: 4 ins, 2 del, 1 sub
    assert (out_dir / "cer.txt").read_text(encoding="utf-8") == "%CER 58.33 [ 7 / 12, 4 ins, 2 del, 1 sub ]\n"


def test_error_report_lists_missing_utts_and_top_errors():
    refs = {f"u{i:02d}": f"{chr(0x4E00 + i)}是" for i in range(25)}
    hyps = {key: f"{chr(0x5E00 + i)}是" for i, key in enumerate(refs)}
    hyps["u00"] = chr(0x5E00) + "是哈"  # one insertion
    refs["zz"] = "不见"  # no hypothesis: two deletions
    refs["u01"], hyps["u01"] = "一是", "帀是"  # 一 -> 帀 twice: the most frequent substitution
    lines = error_report_lines(compute_cer(refs, hyps))
    text = "\n".join(lines)
    assert lines[0].startswith("%CER ")
    assert "MISSING HYPOTHESES (scored as all deletions): 1\n  zz" in text
    sub_start = lines.index("SUBSTITUTIONS (top 20): count ref -> hyp")
    del_start = lines.index("DELETIONS (top 20): count ref")
    substitutions = [line for line in lines[sub_start + 1:del_start] if line]
    assert len(substitutions) == 20  # 24 distinct pairs, top 20 kept
    assert substitutions[0].split() == ["2", "一", "->", "帀"]
    deletions = lines[del_start + 1:lines.index("INSERTIONS (top 20): count hyp")]
    assert sorted(line.split()[1] for line in deletions if line) == ["不", "见"]
    assert lines[-1].split() == ["1", "哈"]


def test_reference_without_characters_is_an_error():
    with pytest.raises(ValueError, match="no characters"):
        compute_cer({"a": " "}, {"a": "x"})


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_compute_cer_cli_writes_reports(tmp_path, capsys):
    write(tmp_path / "ref", [f"{k} {v}" for k, v in REFS.items()])
    write(tmp_path / "hyp", ["u1 今天天汽好啊", "u2 我走", "u4 多余", "u5 "])  # u5: empty hypothesis line
    out_dir = tmp_path / "decode"
    out_dir.mkdir()
    (out_dir / "timestamp.txt").write_text("from an earlier scoring\n", encoding="utf-8")
    assert compute_cer_cli.main(["--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "hyp"),
                                 "--out_dir", str(out_dir)]) == 0
    assert capsys.readouterr().out == "%CER 50.00 [ 5 / 10, 1 ins, 3 del, 1 sub ]\n"
    assert (out_dir / "cer.txt").read_text(encoding="utf-8") == "%CER 50.00 [ 5 / 10, 1 ins, 3 del, 1 sub ]\n"
    per_utt = (out_dir / "per_utt").read_text(encoding="utf-8").splitlines()
    assert [line.split()[:2] for line in per_utt] == [
        [u, kind] for u in ("u1", "u2", "u3") for kind in ("ref", "hyp", "op", "#csid")]
    errors = (out_dir / "errors.txt").read_text(encoding="utf-8")
    assert "MISSING HYPOTHESES (scored as all deletions): 1\n  u3\n" in errors
    assert "HYPOTHESES WITHOUT REFERENCE (ignored): 2\n  u4\n  u5\n" in errors
    assert "     1  气 -> 汽" in errors
    assert not (out_dir / "timestamp.txt").exists()


def test_compute_cer_cli_timestamp_shift(tmp_path, capsys):
    write(tmp_path / "ref", ["u1 今天好", "u2 你好"])
    write(tmp_path / "char_timestamps", ["u1 今 0 200 天 200 400 好 400 600", "u2 你 0 300 好 300 500"])
    recog = tmp_path / "decode" / "1best_recog"
    recog.mkdir(parents=True)
    write(recog / "text", ["u1 今大好", "u2 你"])
    write(recog / "token", ["u1 今 大 好", "u2 你"])
    write(recog / "time_stamp", ["u1 [[30, 180], [250, 420], [390, 610]]", "u2 [[60, 360]]"])
    assert compute_cer_cli.main([
        "--ref", str(tmp_path / "ref"), "--hyp", str(recog / "text"), "--out_dir", str(tmp_path / "decode"),
        "--ref_timestamps", str(tmp_path / "char_timestamps"), "--hyp_timestamps", str(recog / "time_stamp")]) == 0
    # pairs: 今 (30, 20), 天/大 (50, 20), 好 (10, 10), 你 (60, 60); 好 of u2 deleted
    # start: 150 / 4 = 37.5; end: 110 / 4 = 27.5
    # correct only (hyp - ref): 今 (+30, -20), 好 (-10, +10), 你 (+60, +60); 3 of 5 ref chars
    # |start| 100 / 3 = 33.33, |end| 90 / 3 = 30; start 80 / 3 = +26.67, end 50 / 3 = +16.67
    expected = [
        "%AAS start 37.50 ms end 27.50 ms [ 4 pairs: 3 cor, 1 sub; 1 del, 0 ins; 0 utts skipped ]",
        "%AAS_COR start 33.33 ms end 30.00 ms [ 3 correct chars: 60.00% of 5 ref chars ]",
        "%BIAS_COR start +26.67 ms end +16.67 ms [ mean hyp - ref over the same 3 chars ]",
    ]
    assert (tmp_path / "decode" / "timestamp.txt").read_text(encoding="utf-8") == "".join(
        line + "\n" for line in expected)
    assert capsys.readouterr().out == "".join(
        line + "\n" for line in ["%CER 40.00 [ 2 / 5, 0 ins, 1 del, 1 sub ]"] + expected)


def test_compute_cer_cli_fails_cleanly_on_token_timestamp_mismatch(tmp_path):
    write(tmp_path / "ref", ["u1 今天"])
    write(tmp_path / "char_timestamps", ["u1 今 0 200 天 200 400"])
    recog = tmp_path / "1best_recog"
    recog.mkdir()
    write(recog / "text", ["u1 今天"])
    write(recog / "token", ["u1 今 天"])
    write(recog / "time_stamp", ["u1 [[0, 200]]"])
    assert compute_cer_cli.main([
        "--ref", str(tmp_path / "ref"), "--hyp", str(recog / "text"), "--out_dir", str(tmp_path / "out"),
        "--ref_timestamps", str(tmp_path / "char_timestamps"), "--hyp_timestamps", str(recog / "time_stamp")]) == 1
