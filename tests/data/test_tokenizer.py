import json
import random
import subprocess
import sys

import pytest

from funasr_lite.data.tokenizer import (
    BpeTokenizer,
    CharTokenizer,
    TokenListError,
    build_char_token_list,
    make_token_list,
    read_token_list,
    tokens_to_text,
    write_token_list,
)


def test_char_token_list_order_and_specials():
    tokens = build_char_token_list(["我 爱 北京", "北京 欢迎 你", "ATM 机"])
    assert tokens[:3] == ["<blank>", "<s>", "</s>"]
    assert tokens[-1] == "<unk>"
    body = tokens[3:-1]
    assert body == sorted(set("我爱北京欢迎你ATM机"))
    assert " " not in tokens
    assert body.index("A") < body.index("北")  # code-point order: ASCII first
    assert len(tokens) == len(set(tokens))


def test_token_list_file_forms(tmp_path):
    tokens = ["<blank>", "<s>", "</s>", "a", "中", "<unk>"]
    write_token_list(tmp_path / "tokens.txt", tokens)
    assert (tmp_path / "tokens.txt").read_text(encoding="utf-8") == "\n".join(tokens) + "\n"
    assert read_token_list(tmp_path / "tokens.txt") == tokens
    write_token_list(tmp_path / "tokens.json", tokens)
    assert json.loads((tmp_path / "tokens.json").read_text(encoding="utf-8")) == tokens
    assert read_token_list(tmp_path / "tokens.json") == tokens
    two_column = tmp_path / "two.txt"
    two_column.write_text("".join(f"{t} {i}\n" for i, t in reversed(list(enumerate(tokens)))),
                          encoding="utf-8")
    assert read_token_list(two_column) == tokens


@pytest.mark.parametrize("content, expected", [
    ("a 0\nb 2\n", "ids are not 0..1"),
    ("a\nb x y\n", ":2: expected"),
    ("a\nb\na\n", "appears twice"),
])
def test_bad_token_list_names_the_problem(tmp_path, content, expected):
    path = tmp_path / "tokens.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TokenListError, match=expected):
        read_token_list(path)


def test_char_round_trip_and_unknown_counting():
    tokens = build_char_token_list(["今天 天气 很 好", "我 有 3 个 ATM 卡"])
    tokenizer = CharTokenizer(tokens)
    text = "今天 天气 很 好"
    pieces = tokenizer.text2tokens(text)
    assert pieces == list("今天天气很好")
    ids = tokenizer.tokens2ids(pieces)
    assert ids == [tokens.index(ch) for ch in "今天天气很好"]
    assert tokenizer.tokens2text(tokenizer.ids2tokens(ids)) == "今天天气很好"
    assert tokenizer.decode(tokenizer.encode("我有3个ATM卡")) == "我有3个ATM卡"
    assert tokenizer.num_unknown == 0

    ids = tokenizer.tokens2ids(tokenizer.text2tokens("今天 下雨 雨"))
    unk = tokens.index("<unk>")
    assert ids == [tokens.index("今"), tokens.index("天"), unk, unk, unk]
    assert tokenizer.unknown_counts == {"下": 1, "雨": 2}
    assert tokenizer.num_unknown == 3


def test_tokens_to_text_bpe_continuations_and_specials():
    # FunASR large-model vocabulary: "@@" means "continued by the next piece".
    assert tokens_to_text(["abc@@", "def"]) == "abcdef"
    assert tokens_to_text(["he@@", "ll@@", "o", "world"]) == "hello world"
    assert tokens_to_text(["我", "们", "go@@", "od", "的", "ne@@", "ws", "吧"]) == "我们good的news吧"
    assert tokens_to_text(["<s>", "你", "<unk>", "好", "</s>", "<blank>"]) == "你好"
    # sentencepiece pieces: "▁" starts a word.
    assert tokens_to_text(["▁he", "llo", "▁wor", "ld", "你", "▁ok"]) == "hello world你ok"
    # a char vocabulary spelling an abbreviation stays together
    assert tokens_to_text(["用", "A", "T", "M", "取", "钱"]) == "用ATM取钱"


def _english_lines(count: int, seed: int = 0):
    rng = random.Random(seed)
    words = ("the speech model reads long sentences and predicts every token with one "
             "pass over the encoder output while training uses glancing samples").split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 10))) for _ in range(count)]


def test_make_tokens_bpe_on_english_text(tmp_path, repo_root):
    lines = _english_lines(200)
    text = tmp_path / "text"
    text.write_text("".join(f"utt{i:04d} {line}\n" for i, line in enumerate(lines)), encoding="utf-8")
    out_dir = tmp_path / "lang_bpe"
    result = subprocess.run(
        [sys.executable, "-m", "funasr_lite.bin.make_tokens", "--text", str(text),
         "--token_type", "bpe", "--nbpe", "80", "--out_dir", str(out_dir)],
        capture_output=True, text=True, check=True, cwd=repo_root)
    tokens = read_token_list(out_dir / "tokens.txt")
    assert f"{len(tokens)} tokens" in result.stdout
    assert (out_dir / "bpe.model").stat().st_size > 0
    assert (out_dir / "bpe.vocab").read_text(encoding="utf-8").startswith("<unk>")
    assert tokens[:3] == ["<blank>", "<s>", "</s>"] and tokens[-1] == "<unk>"
    assert tokens[3:-1] == sorted(tokens[3:-1])
    assert any(t.startswith("\u2581") and len(t) > 2 for t in tokens)  # merges were learnt

    tokenizer = BpeTokenizer(out_dir / "bpe.model", tokens)
    for line in _english_lines(20, seed=1):
        pieces = tokenizer.text2tokens(line)
        assert len(pieces) < len(line.replace(" ", ""))  # real merges, not letters only
        assert tokenizer.decode(tokenizer.encode(line)) == line
    assert tokenizer.num_unknown == 0
    # mixed text: CJK characters are single tokens (unknown here), Latin runs are BPE pieces
    pieces = tokenizer.text2tokens("模型 the speech 很好")
    assert pieces[:2] == ["模", "型"] and pieces[-2:] == ["很", "好"]
    assert tokenizer.tokens2text(pieces) == "模型the speech很好"
    tokenizer.tokens2ids(pieces)
    assert tokenizer.num_unknown == 4


def test_make_tokens_char_and_empty_text(tmp_path, repo_root):
    text = tmp_path / "text"
    text.write_text("u1 今天 天气\nu2 很 好\n", encoding="utf-8")
    out_dir = tmp_path / "lang_char"
    result = subprocess.run(
        [sys.executable, "-m", "funasr_lite.bin.make_tokens", "--text", str(text),
         "--token_type", "char", "--out_dir", str(out_dir)],
        capture_output=True, text=True, check=True, cwd=repo_root)
    assert read_token_list(out_dir / "tokens.txt") == \
        ["<blank>", "<s>", "</s>", *sorted(set("今天气很好")), "<unk>"]
    assert "9 tokens" in result.stdout

    empty = tmp_path / "empty"
    empty.write_text("", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "funasr_lite.bin.make_tokens", "--text", str(empty),
         "--token_type", "char", "--out_dir", str(tmp_path / "lang_empty")], capture_output=True, text=True,
        cwd=repo_root)
    assert result.returncode != 0
    assert "no transcripts" in result.stderr and str(empty) in result.stderr
    assert not (tmp_path / "lang_empty" / "tokens.txt").exists()


def test_vocabulary_size_has_one_computation(tmp_path):
    from funasr_lite.data.tokenizer import token_list_size, vocab_size_of
    from funasr_lite.utils.config import ConfigError

    tokens = ["<blank>", "<s>", "</s>", "a", "b", "<unk>"]
    txt, js = tmp_path / "tokens.txt", tmp_path / "tokens.json"
    txt.write_text("\n".join(tokens) + "\n\n", encoding="utf-8")  # a blank line is not a token
    js.write_text(json.dumps(tokens), encoding="utf-8")
    assert token_list_size(tokens) == token_list_size(str(txt)) == token_list_size(str(js)) == 6
    assert vocab_size_of({"token_list": str(txt)}) == 6
    assert vocab_size_of({"vocab_size": -1, "token_list": tokens}) == 6  # FunASR's "from the list"
    assert vocab_size_of({"vocab_size": 9, "token_list": str(tmp_path / "absent.txt")}) == 9
    with pytest.raises(ConfigError, match="absent.txt: no such file"):
        vocab_size_of({"token_list": str(tmp_path / "absent.txt")})
    with pytest.raises(ConfigError, match="needs vocab_size or token_list"):
        vocab_size_of({})
    (tmp_path / "dup.txt").write_text("a\nb\na\n", encoding="utf-8")
    with pytest.raises(TokenListError, match="appears twice"):
        token_list_size(str(tmp_path / "dup.txt"))


def test_a_capped_char_list_keeps_the_most_frequent_characters(tmp_path):
    texts = ["打开 空调", "打开 电视", "打开 冰箱", "关闭 空调"]
    tokens = build_char_token_list(texts, max_tokens=4 + 4)
    # 打 开 (3 each), 空 调 (2 each) kept; the 1-count characters become <unk>
    assert tokens == ["<blank>", "<s>", "</s>", *sorted("打开空调"), "<unk>"]
    assert build_char_token_list(texts, max_tokens=100) == build_char_token_list(texts)
    with pytest.raises(ValueError, match="no room"):
        build_char_token_list(texts, max_tokens=4)
    (tmp_path / "text").write_text("a 打开 空调\nb 关闭 空调\n", encoding="utf-8")
    with pytest.raises(ValueError, match="nbpe"):
        make_token_list(tmp_path / "text", "bpe", tmp_path / "bpe", max_tokens=10)
