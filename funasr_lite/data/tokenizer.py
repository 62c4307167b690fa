"""Token lists and tokenizers: characters (AISHELL) and sentencepiece BPE (English / mixed).

Token list (docs/spec.md §7): ``<blank>``=0, ``<s>``=1, ``</s>``=2, then the sorted tokens, ``<unk>``
last. Stored as ``tokens.txt`` (one token per line; a two-column ``token id`` form is also
read) or ``tokens.json`` (a JSON list, as in released FunASR model dirs).

Detokenisation (``tokens2text``) understands the three vocabularies met in practice:
- plain characters (AISHELL): tokens are concatenated;
- FunASR's large-model vocabulary (8404 tokens): CJK characters plus English BPE pieces where
  ``@@`` marks a piece continued by the next one (``abc@@ def`` -> ``abcdef``);
- sentencepiece pieces, where ``▁`` starts a new word.
English words are separated by one space; no space is put between CJK characters, nor
between a CJK character and an English word.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from funasr_lite.utils.config import ConfigError
from funasr_lite.utils.fileio import atomic_open

logger = logging.getLogger(__name__)

BLANK, SOS, EOS, UNK = "<blank>", "<s>", "</s>", "<unk>"
LEADING_SPECIALS = (BLANK, SOS, EOS)
# Dropped by tokens2text: they carry no text.
NON_TEXT_TOKENS = frozenset({BLANK, SOS, EOS, UNK, "<OOV>"})
BPE_CONTINUATION = "@@"
SENTENCEPIECE_WORD_START = "\u2581"  # "▁"


class TokenListError(ValueError):
    """A malformed token list; the message names the file (and line)."""


def is_cjk_char(ch: str) -> bool:
    """True for characters written without spaces and tokenised one by one.

    CJK unified ideographs (+ extension A and compatibility ideographs), CJK symbols and
    punctuation, kana, Hangul syllables and full-width forms.
    """
    code = ord(ch)
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0xF900 <= code <= 0xFAFF
        or 0x3000 <= code <= 0x30FF
        or 0xAC00 <= code <= 0xD7AF
        or 0xFF00 <= code <= 0xFFEF
        or 0x20000 <= code <= 0x2FA1F
    )


def text_to_chars(text: str) -> List[str]:
    """The characters of ``text`` with all whitespace removed."""
    return [ch for ch in text if not ch.isspace()]


def build_char_token_list(texts: Iterable[str], max_tokens: Optional[int] = None) -> List[str]:
    """``<blank> <s> </s>``, the sorted unique characters of ``texts`` (spaces removed), ``<unk>``.

    ``max_tokens``: the list's size at most (specials included), keeping the most frequent
    characters (ties: the smaller code point); the rest become ``<unk>``, as in a fixed-vocabulary
    model such as Paraformer-tiny's 544 characters."""
    counts: collections.Counter = collections.Counter()
    for text in texts:
        counts.update(text_to_chars(text))
    for special in (*LEADING_SPECIALS, UNK):
        counts.pop(special, None)
    chars = set(counts)
    if max_tokens is not None:
        room = max_tokens - len(LEADING_SPECIALS) - 1
        if room < 1:
            raise ValueError(f"max_tokens={max_tokens}: no room for characters beside the 4 special tokens")
        chars = {ch for ch, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:room]}
    return [*LEADING_SPECIALS, *sorted(chars), UNK]


def read_token_list(path) -> List[str]:
    """Read ``tokens.json`` (JSON list) or ``tokens.txt`` (``token`` or ``token id`` per line)."""
    path = os.fspath(path)
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            try:
                tokens = json.load(f)
            except json.JSONDecodeError as e:
                raise TokenListError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
            except UnicodeDecodeError as e:
                raise TokenListError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
            except RecursionError:
                raise TokenListError(f"{path}: JSON nested too deeply") from None
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise TokenListError(f"{path}: expected a JSON list of strings")
    else:
        tokens = _read_token_txt(path)
    if not tokens:
        raise TokenListError(f"{path}: no tokens")
    seen: Dict[str, int] = {}
    for index, token in enumerate(tokens):
        if token in seen:
            raise TokenListError(f"{path}: token {token!r} appears twice (ids {seen[token]} and {index})")
        seen[token] = index
    return tokens


def token_list_size(token_list) -> int:
    """Number of tokens of a token list: a list, or a ``tokens.txt``/``tokens.json`` path
    (read and checked by :func:`read_token_list`). The one vocabulary-size computation: training
    config resolution, ``build_model`` and ``load_lm`` all count through it."""
    if isinstance(token_list, (list, tuple)):
        return len(token_list)
    if isinstance(token_list, (str, os.PathLike)):
        if not os.path.isfile(token_list):
            raise ConfigError(f"token_list {os.fspath(token_list)}: no such file")
        return len(read_token_list(token_list))
    raise ConfigError(f"token_list must be a list or a tokens.txt / tokens.json path, got {token_list!r}")


def vocab_size_of(config: Mapping[str, Any]) -> int:
    """A model config's vocabulary size: ``vocab_size`` when set (FunASR writes -1 for "from the
    token list"), else the size of ``token_list`` (:func:`token_list_size`)."""
    if config.get("vocab_size") not in (None, -1):
        return int(config["vocab_size"])
    if config.get("token_list") is None:
        raise ConfigError("config needs vocab_size or token_list (a list, tokens.txt or tokens.json)")
    return token_list_size(config["token_list"])


_TOKEN_ID_RE = re.compile(r"-?[0-9]+")  # ASCII digits only: int() refuses "²", isdigit() does not


def _read_token_txt(path: str) -> List[str]:
    by_id: Dict[int, str] = {}
    plain: List[str] = []
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise TokenListError(f"{path}:{line_no}: not valid UTF-8 ({e.reason})") from None
            fields = line.split()
            if not fields:
                continue
            if len(fields) == 1:
                plain.append(fields[0])
            elif len(fields) == 2 and _TOKEN_ID_RE.fullmatch(fields[1]):
                token_id = int(fields[1])
                if token_id in by_id:
                    raise TokenListError(f"{path}:{line_no}: id {token_id} given twice")
                by_id[token_id] = fields[0]
            else:
                raise TokenListError(f"{path}:{line_no}: expected 'token' or 'token id', got {line!r}")
    if plain and by_id:
        raise TokenListError(f"{path}: mixes one-column and two-column lines")
    if by_id:
        if sorted(by_id) != list(range(len(by_id))):
            raise TokenListError(f"{path}: ids are not 0..{len(by_id) - 1} without gaps")
        return [by_id[i] for i in range(len(by_id))]
    return plain


def write_token_list(path, tokens: Sequence[str]) -> None:
    """Write ``tokens.txt`` (one token per line) or ``tokens.json`` atomically."""
    path = os.fspath(path)
    with atomic_open(path) as f:
        if path.endswith(".json"):
            json.dump(list(tokens), f, ensure_ascii=False, indent=0)
            f.write("\n")
        else:
            for token in tokens:
                f.write(token + "\n")


def tokens_to_text(tokens: Iterable[str]) -> str:
    """Join tokens into text (see the module docstring); specials such as ``<unk>`` are dropped.

    ``@@`` pieces continue into the next piece; a piece starting with ``▁`` starts a new word;
    any other multi-letter piece after an unfinished sentencepiece word continues it. Runs of
    single Latin letters (a character vocabulary spelling ``ATM``) stay together.
    """
    pieces: List[str] = []  # finished English words and CJK characters, in order
    kinds: List[str] = []  # "cjk" | "word" | "letter" for each entry of pieces
    current = ""  # an English word being built
    current_open = False  # True while ``current`` may take more pieces without a marker
    current_marker = False  # True when ``current`` was built from sentencepiece pieces

    def finish() -> None:
        nonlocal current, current_open, current_marker
        if current:
            pieces.append(current)
            kinds.append("letter" if len(current) == 1 and not current_marker else "word")
        current, current_open, current_marker = "", False, False

    for token in tokens:
        if token in NON_TEXT_TOKENS or not token:
            continue
        if all(is_cjk_char(ch) for ch in token):
            finish()
            pieces.append(token)
            kinds.append("cjk")
        elif token.endswith(BPE_CONTINUATION):
            if not current_open or current_marker:
                finish()
            current += token[: -len(BPE_CONTINUATION)]
            current_open = True
        elif token.startswith(SENTENCEPIECE_WORD_START):
            finish()
            current = token[len(SENTENCEPIECE_WORD_START):]
            current_open = current_marker = True
        elif current_open:
            current += token
            if not current_marker:
                finish()  # the @@ chain ends with this piece
        else:
            finish()
            current = token
            finish()
    finish()

    out: List[str] = []
    for i, (piece, kind) in enumerate(zip(pieces, kinds)):
        if i > 0 and kind != "cjk" and kinds[i - 1] != "cjk" and not (kind == kinds[i - 1] == "letter"):
            out.append(" ")
        out.append(piece)
    return "".join(out)


class CharTokenizer:
    """Characters <-> ids over a token list (AISHELL char vocabulary, or the large model's).

    ``unknown_counts`` counts the tokens mapped to ``<unk>`` by ``tokens2ids`` (by token).
    """

    def __init__(self, token_list: Sequence[str], unk_token: str = UNK):
        self.token_list: List[str] = list(token_list)
        self.token2id: Dict[str, int] = {t: i for i, t in enumerate(self.token_list)}
        if unk_token not in self.token2id:
            raise TokenListError(f"token list has no {unk_token!r}")
        self.unk_token = unk_token
        self.unk_id = self.token2id[unk_token]
        self.unknown_counts: collections.Counter = collections.Counter()

    @classmethod
    def from_file(cls, path) -> "CharTokenizer":
        return cls(read_token_list(path))

    def __len__(self) -> int:
        return len(self.token_list)

    @property
    def num_unknown(self) -> int:
        """How many tokens ``tokens2ids`` has mapped to ``<unk>`` so far."""
        return sum(self.unknown_counts.values())

    def text2tokens(self, text: str) -> List[str]:
        return text_to_chars(text)

    def tokens2ids(self, tokens: Iterable[str]) -> List[int]:
        ids = []
        for token in tokens:
            token_id = self.token2id.get(token)
            if token_id is None:
                self.unknown_counts[token] += 1
                token_id = self.unk_id
            ids.append(token_id)
        return ids

    def ids2tokens(self, ids: Iterable[int]) -> List[str]:
        return [self.token_list[int(i)] for i in ids]

    def tokens2text(self, tokens: Iterable[str]) -> str:
        return tokens_to_text(tokens)

    def encode(self, text: str) -> List[int]:
        return self.tokens2ids(self.text2tokens(text))

    def decode(self, ids: Iterable[int]) -> str:
        return self.tokens2text(self.ids2tokens(ids))


def split_cjk_and_latin(text: str) -> List[str]:
    """Split text into single CJK characters and the non-CJK runs between them (per word).

    ``"我爱 new york 城"`` -> ``["我", "爱", "new york", "城"]``: consecutive non-CJK words stay
    in one run (spaces kept) so sentencepiece sees them as it saw them in training.
    """
    segments: List[str] = []
    run: List[str] = []
    for ch in text:
        if is_cjk_char(ch):
            if "".join(run).strip():
                segments.append(" ".join("".join(run).split()))
            run = []
            segments.append(ch)
        else:
            run.append(ch)
    if "".join(run).strip():
        segments.append(" ".join("".join(run).split()))
    return [s for s in segments if not s.isspace()]


class BpeTokenizer(CharTokenizer):
    """Sentencepiece BPE for English / mixed corpora.

    CJK characters are single tokens (as in the char vocabulary); each run of non-CJK text is
    cut into sentencepiece pieces (``▁`` marks a word start). Pieces absent from the token
    list become ``<unk>`` and are counted.
    """

    def __init__(self, bpe_model, token_list: Sequence[str], unk_token: str = UNK):
        super().__init__(token_list, unk_token)
        import sentencepiece as spm

        self.bpe_model = os.fspath(bpe_model)
        self.processor = spm.SentencePieceProcessor(model_file=self.bpe_model)

    def text2tokens(self, text: str) -> List[str]:
        tokens: List[str] = []
        for segment in split_cjk_and_latin(text):
            if len(segment) == 1 and is_cjk_char(segment):
                tokens.append(segment)
            else:
                tokens.extend(self.processor.encode(segment, out_type=str))
        return tokens


def latin_training_lines(texts: Iterable[str]) -> List[str]:
    """The non-CJK runs of each text, one line per text (what sentencepiece is trained on)."""
    lines = []
    for text in texts:
        runs = [s for s in split_cjk_and_latin(text) if not (len(s) == 1 and is_cjk_char(s))]
        if runs:
            lines.append(" ".join(runs))
    return lines


def train_bpe(texts: Sequence[str], model_path, vocab_size: int, num_threads: int = 1) -> List[str]:
    """Train a sentencepiece BPE model on the non-CJK text; write ``<model>`` and its ``.vocab``.

    ``vocab_size`` is an upper bound (sentencepiece stops early on a small text). Returns the
    pieces, without sentencepiece's own ``<unk> <s> </s>``. Writes are atomic.
    """
    import io

    import sentencepiece as spm

    lines = latin_training_lines(texts)
    if not lines:
        raise ValueError("no non-CJK text to train a BPE model on (use --token_type char)")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # a small text may not support vocab_size pieces
        character_coverage=1.0,
        normalization_rule_name="identity",  # keep the text as it is: detokenising round-trips
        num_threads=num_threads,
        minloglevel=2,
    )
    model_path = os.fspath(model_path)
    with atomic_open(model_path, "wb") as f:
        f.write(model.getvalue())
    processor = spm.SentencePieceProcessor(model_file=model_path)
    vocab_path = os.path.splitext(model_path)[0] + ".vocab"
    pieces = []
    with atomic_open(vocab_path) as f:
        for i in range(processor.get_piece_size()):
            piece = processor.id_to_piece(i)
            f.write(f"{piece}\t{processor.get_score(i)}\n")
            if not (processor.is_unknown(i) or processor.is_control(i)):
                pieces.append(piece)
    return pieces


def build_bpe_token_list(texts: Sequence[str], pieces: Iterable[str]) -> List[str]:
    """``<blank> <s> </s>``, sorted CJK characters of ``texts`` and BPE ``pieces``, ``<unk>``."""
    tokens = {ch for text in texts for ch in text if is_cjk_char(ch)}
    tokens.update(pieces)
    tokens -= set(LEADING_SPECIALS) | {UNK}
    return [*LEADING_SPECIALS, *sorted(tokens), UNK]


def read_text_file(path, log_every_problem: int = 5) -> List[str]:
    """The transcripts of a Kaldi ``text`` file (``utt words...``); bad lines are logged, skipped."""
    path = os.fspath(path)
    texts: List[str] = []
    problems: List[str] = []
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                problems.append(f"{path}:{line_no}: not valid UTF-8 ({e.reason}): line skipped")
                continue
            fields = line.split(maxsplit=1)
            if not fields:
                continue
            if len(fields) < 2 or not fields[1].strip():
                problems.append(f"{path}:{line_no}: utterance {fields[0]!r} has no text: skipped")
                continue
            texts.append(fields[1].strip())
    for message in problems[:log_every_problem]:
        logger.warning("%s", message)
    if len(problems) > log_every_problem:
        logger.warning("... %d lines of %s skipped in all", len(problems), path)
    return texts


def make_token_list(text_path, token_type: str, out_dir, nbpe: int = 500,
                    max_tokens: Optional[int] = None) -> List[str]:
    """Write ``<out_dir>/tokens.txt`` (+ ``bpe.model``/``bpe.vocab`` for BPE) from a train text.
    ``max_tokens`` (characters only): keep the most frequent characters (build_char_token_list).

    Raises ValueError on an empty text file or an unknown ``token_type``.
    """
    texts = read_text_file(text_path)
    if not texts:
        raise ValueError(f"{os.fspath(text_path)}: no transcripts (empty text file?)")
    os.makedirs(out_dir, exist_ok=True)
    if token_type == "char":
        tokens = build_char_token_list(texts, max_tokens)
    elif token_type == "bpe":
        if max_tokens is not None:
            raise ValueError("max_tokens is for character token lists; a BPE list's size is nbpe")
        pieces = train_bpe(texts, os.path.join(out_dir, "bpe.model"), nbpe)
        tokens = build_bpe_token_list(texts, pieces)
    else:
        raise ValueError(f"unknown token type {token_type!r} (expected char or bpe)")
    write_token_list(os.path.join(out_dir, "tokens.txt"), tokens)
    return tokens


def build_tokenizer(token_list_path, bpe_model: Optional[str] = None) -> CharTokenizer:
    """A CharTokenizer, or a BpeTokenizer when ``bpe_model`` is given."""
    tokens = read_token_list(token_list_path)
    return BpeTokenizer(bpe_model, tokens) if bpe_model else CharTokenizer(tokens)
