"""Text of the synthetic corpus: People's Daily sentences, numbers spelt out, tone-numbered pinyin.

The source is the word-segmented, POS-tagged People's Daily January 1998 text (``词/pos`` tokens,
one paragraph a line). A *sentence* is a run of words between two punctuation marks, with
numbers spelt out in Chinese; a run that keeps any non-Chinese character is dropped (counted).
So a corpus utterance is a *clause*: the mark that ended it in the source (，、。？ ...) is dropped;
:func:`clause_end_marks` gives it back (egs/aishell1/local/make_longform_set.py's ``utt_end_marks``).
"""

from __future__ import annotations

import collections
import logging
import os
import re
import sys
from typing import Collection, Dict, Iterator, List, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

MIN_CHARS = 6
MAX_CHARS = 25


def default_text_path() -> str:
    """Where tools/setup.sh puts the People's Daily text: ``<sys.prefix>/share/funasr_lite/``."""
    return os.path.join(sys.prefix, "share", "funasr_lite", "people_daily_199801.txt")


_DIGIT_READING = "零一二三四五六七八九"
_FULLWIDTH_TO_ASCII = str.maketrans("０１２３４５６７８９．％", "0123456789.%")
# Marks removed without cutting the sentence (quotes and title marks wrap a phrase).
_INLINE_MARKS = frozenset("“”‘’『』《》〈〉「」\"'")
_NUMBER_RE = re.compile(r"(\d+)(?:\.(\d+))?(%)?")
_SYLLABLE_RE = re.compile(r"^[a-z]*[aeiouv][a-z]*[1-5]$")


def is_chinese_char(ch: str) -> bool:
    """True for a CJK unified ideograph or 〇 (the characters a transcript may hold)."""
    return "\u4e00" <= ch <= "\u9fff" or ch == "\u3007"


def _read_four_digits(group: int) -> str:
    """Reading of 1..9999 with 千百十 units and inner 零 (``一十`` kept; the caller strips it)."""
    out = ""
    zero_pending = False
    for power, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit = group // power % 10
        if digit == 0:
            zero_pending = bool(out)
        else:
            if zero_pending:
                out += "零"
                zero_pending = False
            out += _DIGIT_READING[digit] + unit
    return out


def read_integer(number: int) -> str:
    """Chinese reading of a non-negative integer below 10**16: 10010 -> 一万零一十."""
    if number < 0 or number >= 10**16:
        raise ValueError(f"cannot read {number}")
    if number == 0:
        return "零"
    groups = []
    while number:
        groups.append(number % 10000)
        number //= 10000
    units = ("", "万", "亿", "万亿")
    out = ""
    need_zero = False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            need_zero = bool(out)
            continue
        if out and (need_zero or group < 1000):
            out += "零"
        out += _read_four_digits(group) + units[index]
        need_zero = False
    if out.startswith("一十"):
        out = out[1:]
    elif out[:2] in ("二千", "二万", "二亿"):
        out = "两" + out[1:]
    return out


def read_digits(digits: str) -> str:
    """Digit-by-digit reading: 1998 -> 一九九八."""
    return "".join(_DIGIT_READING[int(d)] for d in digits)


def spell_out_numbers(word: str) -> str:
    """Replace the (half- or full-width) numbers in ``word`` by their Chinese reading.

    Years before 年 are read digit by digit (１９９８年 -> 一九九八年), so are numbers with a
    leading zero; decimals use 点 (１２．３ -> 十二点三) and ``%`` becomes 百分之. The result may
    still hold non-Chinese characters; the caller decides what to drop.
    """
    text = word.translate(_FULLWIDTH_TO_ASCII)

    def replace(match: re.Match) -> str:
        integer, fraction, percent = match.group(1), match.group(2), match.group(3)
        followed_by_year = text[match.end():match.end() + 1] == "年"
        if (followed_by_year and fraction is None and not percent and 2 <= len(integer) <= 4) or (
            len(integer) > 1 and integer.startswith("0")
        ) or len(integer) > 16:
            reading = read_digits(integer)
        else:
            reading = read_integer(int(integer))
        if fraction is not None:
            reading += "点" + read_digits(fraction)
        return ("百分之" + reading) if percent else reading

    return _NUMBER_RE.sub(replace, text)


def _split_tagged_token(token: str) -> Tuple[str, str]:
    word, slash, tag = token.rpartition("/")
    if not slash or not word:
        return token, ""
    return word, tag


def _tagged_line_runs(line: str) -> Iterator[Tuple[List[str], bool, str]]:
    """``(words, clean, mark)`` for each non-empty run of words between punctuation marks of one
    ``词/pos`` line: words with POS tags stripped and numbers spelt out, ``clean`` when every
    character is Chinese, ``mark`` the punctuation token that ended the run (``""`` at the end of
    the line). Inline marks (quotes, title marks) neither end a run nor count as its mark."""
    for words, _, clean, mark in tagged_line_runs(line):
        yield words, clean, mark


def tagged_line_runs(line: str) -> Iterator[Tuple[List[str], List[str], bool, str]]:
    """As :func:`_tagged_line_runs`, with each word's POS tag: ``(words, tags, clean, mark)``."""
    words: List[str] = []
    tags: List[str] = []
    clean = True
    for token in line.split():
        word, tag = _split_tagged_token(token)
        if tag == "w" or all(not is_chinese_char(c) and not c.isalnum() for c in word):
            if all(c in _INLINE_MARKS for c in word):
                continue
            if words:
                yield words, tags, clean, word
            words, tags, clean = [], [], True
            continue
        word = spell_out_numbers(word)
        if not all(is_chinese_char(c) for c in word):
            clean = False
        words.append(word)
        tags.append(tag)
    if words:
        yield words, tags, clean, ""


def segments_from_tagged_line(line: str, dropped: Optional[collections.Counter] = None) -> Iterator[List[str]]:
    """Yield runs of words between punctuation marks of one ``词/pos 词/pos`` line.

    Words are returned with POS tags stripped and numbers spelt out; a run that still holds a
    non-Chinese character (Latin letters, symbols) is dropped and counted in ``dropped``.
    """
    for words, clean, _ in _tagged_line_runs(line):
        if clean:
            yield words
        elif dropped is not None:
            dropped["non-Chinese characters"] += 1


def utf8_lines(path: str, dropped: Optional[collections.Counter] = None) -> Iterator[str]:
    """The lines of ``path`` decoded as UTF-8; a line that is not is skipped with a warning naming
    ``file:line`` (and counted as ``dropped["lines not UTF-8"]`` when a counter is given)."""
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as e:
                logger.warning("%s:%d: not valid UTF-8 (%s); line skipped", path, line_no, e.reason)
                if dropped is not None:
                    dropped["lines not UTF-8"] += 1


END_OF_LINE_MARK = "。"


def clause_end_marks(text_path: str, wanted: Optional[Collection[str]] = None) -> Dict[str, collections.Counter]:
    """For each clause of the source (a run of :func:`segments_from_tagged_line`, as its characters
    without spaces, the way a corpus ``text`` line reads with its spaces removed), a Counter of the
    punctuation marks that followed it in the source, over all its occurrences. The end of a line
    (paragraph) counts as ``。``. With ``wanted``, only those clauses are kept (memory). A line that
    is not UTF-8 is skipped with a warning naming ``file:line``.
    """
    marks: Dict[str, collections.Counter] = {}
    for line in utf8_lines(text_path):
        for words, clean, mark in _tagged_line_runs(line):
            if not clean:
                continue
            chars = "".join(words)
            if wanted is not None and chars not in wanted:
                continue
            marks.setdefault(chars, collections.Counter())[mark or END_OF_LINE_MARK] += 1
    return marks


def extract_sentences(text_path: str, min_chars: int = MIN_CHARS, max_chars: int = MAX_CHARS,
                      dropped: Optional[collections.Counter] = None) -> List[Tuple[str, ...]]:
    """Distinct word-segmented sentences of ``min_chars``..``max_chars`` characters, in file order.

    Two sentences with the same characters but a different segmentation count once. Runs left
    out are counted by reason in ``dropped``; a line that is not UTF-8 is skipped with a warning
    naming ``file:line``.
    """
    dropped = collections.Counter() if dropped is None else dropped
    seen = set()
    sentences: List[Tuple[str, ...]] = []
    for line in utf8_lines(text_path, dropped):
        for words in segments_from_tagged_line(line, dropped):
            chars = "".join(words)
            if not min_chars <= len(chars) <= max_chars:
                dropped[f"outside {min_chars}-{max_chars} characters"] += 1
            elif chars in seen:
                dropped["duplicates"] += 1
            else:
                seen.add(chars)
                sentences.append(tuple(words))
    return sentences


def sentence_pinyin(words: Sequence[str]) -> Optional[List[str]]:
    """Tone-numbered pinyin per character (``lv4``, neutral tone 5, tone sandhi applied).

    Phrase-aware: pypinyin sees the words. None when a character has no speakable syllable
    (e.g. 嗯 -> ``n2``, which espeak-ng cannot voice).
    """
    from pypinyin import Style, lazy_pinyin

    syllables = lazy_pinyin(list(words), style=Style.TONE3, neutral_tone_with_five=True,
                            tone_sandhi=True)
    if len(syllables) != sum(len(w) for w in words):
        return None
    if not all(_SYLLABLE_RE.match(s) for s in syllables):
        return None
    return syllables
