"""Punctuation training text: People's Daily paragraphs -> characters with the mark after each.

The source is the word-segmented, POS-tagged People's Daily 1998-01 text that tools/setup.sh
fetches (``词/pos`` tokens, punctuation tagged ``/w``, one paragraph a line). A paragraph becomes
a *punctuated line*: Chinese characters, each followed by at most one of the four marks the
CT-Transformer predicts (``，。？、``), e.g. ``我们十分高兴，向全国人民致以问候。``.

Other marks are mapped (:data:`MARK_LABELS`):

* ``！`` -> ``。`` (ends a sentence; there is no exclamation label);
* ``；`` ``：`` and dashes (``—`` ``——`` ``———``) and the ellipsis ``……`` -> ``，`` (a pause
  inside a sentence);
* quotes, brackets, title marks, bullets and symbols -> nothing (they wrap or decorate a phrase).

When several marks follow one character (``。”``, ``：“``), the strongest label is kept:
``？`` > ``。`` > ``，`` > ``、``. Numbers are spelt out in Chinese as in the synthetic corpus
(``１９９８年`` -> ``一九九八年``); characters that are still not Chinese (Latin letters,
symbols) are dropped, so the text looks like a Chinese ASR transcript.

:func:`prepare_punc_text` writes ``train.txt``, ``valid.txt`` and ``test.txt`` (punctuated lines)
after leaving out every paragraph that contains a sentence of the given ``exclude`` texts (the
corpus's dev and test transcripts): the punctuation model never sees what the ASR is tested on.
"""

from __future__ import annotations

import bisect
import collections
import json
import logging
import os
from typing import Dict, Iterable, List, Sequence, Tuple

from funasr_lite.data.synthetic.text import is_chinese_char, spell_out_numbers, utf8_lines
from funasr_lite.data.tokenizer import read_text_file
from funasr_lite.utils.fileio import atomic_open

logger = logging.getLogger(__name__)

PUNC_MARKS = ("，", "。", "？", "、")  # the marks a punctuated line may hold
NO_MARK = "_"
MARK_LABELS: Dict[str, str] = {
    "，": "，", "。": "。", "？": "？", "、": "、",
    "！": "。",
    "；": "，", "：": "，", "—": "，", "——": "，", "———": "，", "……": "，", "…": "，",
}
# Which label wins when two marks follow the same character.
MARK_PRIORITY = {NO_MARK: 0, "、": 1, "，": 2, "。": 3, "？": 4}
MIN_LINE_CHARS = 2
VALID_EVERY = 50  # every 50th kept paragraph (offset 1) -> valid.txt
TEST_EVERY = 50  # every 50th kept paragraph (offset 0) -> test.txt


def tagged_line_to_example(line: str) -> Tuple[str, List[str]]:
    """One ``词/pos`` paragraph -> (characters, the label after each: a mark of PUNC_MARKS or ``_``)."""
    chars: List[str] = []
    labels: List[str] = []
    for token in line.split():
        word, slash, tag = token.rpartition("/")
        if not slash or not word:
            word, tag = token, ""
        if tag == "w" or all(not is_chinese_char(c) and not c.isalnum() for c in word):
            label = MARK_LABELS.get(word)
            if label is not None and labels and MARK_PRIORITY[label] > MARK_PRIORITY[labels[-1]]:
                labels[-1] = label
            continue
        for ch in spell_out_numbers(word):
            if is_chinese_char(ch):
                chars.append(ch)
                labels.append(NO_MARK)
    return "".join(chars), labels


def to_punctuated_line(chars: str, labels: Sequence[str]) -> str:
    """``("我们好", ["_", "_", "。"])`` -> ``"我们好。"``."""
    return "".join(ch + ("" if label == NO_MARK else label) for ch, label in zip(chars, labels))


def split_punctuated_line(line: str, where: str = "line") -> Tuple[List[str], List[str]]:
    """A punctuated line -> (tokens, the label after each). Spaces are ignored; a mark with no
    character before it is an error naming ``where``; two marks in a row keep the stronger."""
    tokens: List[str] = []
    labels: List[str] = []
    for ch in line:
        if ch.isspace():
            continue
        if ch in PUNC_MARKS:
            if not tokens:
                raise ValueError(f"{where}: punctuation {ch!r} before any character")
            if MARK_PRIORITY[ch] > MARK_PRIORITY[labels[-1]]:
                labels[-1] = ch
            continue
        tokens.append(ch)
        labels.append(NO_MARK)
    return tokens, labels


def read_punctuated_lines(path) -> List[Tuple[List[str], List[str]]]:
    """(tokens, labels) of every non-empty line of a punctuated text file; errors name file:line."""
    path = os.fspath(path)
    examples = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            tokens, labels = split_punctuated_line(line, f"{path}:{line_no}")
            if tokens:
                examples.append((tokens, labels))
    if not examples:
        raise ValueError(f"{path}: no punctuated lines")
    return examples


def excluded_sentences(text_paths: Iterable[str]) -> List[str]:
    """The transcripts (spaces removed) of Kaldi ``text`` files, e.g. data/dev/text data/test/text."""
    sentences = set()
    for path in text_paths:
        for text in read_text_file(path):
            sentence = "".join(text.split())
            if sentence:
                sentences.add(sentence)
    return sorted(sentences)


def prepare_punc_text(source_path: str, out_dir: str, exclude_text: Sequence[str] = (),
                      valid_every: int = VALID_EVERY, test_every: int = TEST_EVERY) -> Dict:
    """Write ``out_dir/{train,valid,test}.txt`` (punctuated lines) and ``stats.json``.

    Paragraphs shorter than MIN_LINE_CHARS characters are skipped; a paragraph containing one of
    the transcripts of ``exclude_text`` is left out of all three; of the others, the 0th, 50th, ...
    go to test and the 1st, 51st, ... to valid (in file order). A line that is not UTF-8 is skipped
    with a warning naming ``file:line``. Returns the stats written to ``stats.json``.
    """
    excluded = excluded_sentences(exclude_text)
    counts: Dict[str, int] = collections.Counter()
    paragraphs: List[Tuple[str, List[str]]] = []
    for line in utf8_lines(source_path, counts):
        chars, labels = tagged_line_to_example(line)
        if len(chars) < MIN_LINE_CHARS:
            counts["paragraphs too short"] += 1
            continue
        paragraphs.append((chars, labels))
    if not paragraphs:
        raise ValueError(f"{source_path}: no paragraphs with text")
    joined = "\n".join(chars for chars, _ in paragraphs)
    starts = [0]
    for chars, _ in paragraphs:
        starts.append(starts[-1] + len(chars) + 1)
    banned = set()
    for sentence in excluded:
        at = joined.find(sentence)
        while at >= 0:
            banned.add(bisect.bisect_right(starts, at) - 1)
            at = joined.find(sentence, at + 1)
    splits: Dict[str, List[str]] = {"train": [], "valid": [], "test": []}
    kept = 0
    for index, (chars, labels) in enumerate(paragraphs):
        if index in banned:
            continue
        split = "test" if kept % test_every == 0 else "valid" if kept % valid_every == 1 else "train"
        splits[split].append(to_punctuated_line(chars, labels))
        kept += 1
    os.makedirs(out_dir, exist_ok=True)
    for split, lines in splits.items():
        with atomic_open(os.path.join(out_dir, f"{split}.txt")) as f:
            f.writelines(line + "\n" for line in lines)
    label_counts = collections.Counter(label for _, labels in paragraphs for label in labels)
    stats = {"source": os.path.abspath(source_path), "exclude_text": [os.path.abspath(p) for p in exclude_text],
             "excluded_sentences": len(excluded), "paragraphs": len(paragraphs),
             "paragraphs_left_out_for_excluded_sentences": len(banned),
             "lines": {split: len(lines) for split, lines in splits.items()},
             "chars": {split: sum(len(split_punctuated_line(line)[0]) for line in lines)
                       for split, lines in splits.items()},
             "labels_all_paragraphs": dict(label_counts), "skipped": dict(counts)}
    with atomic_open(os.path.join(out_dir, "stats.json")) as f:
        json.dump(stats, f, ensure_ascii=False, indent=1)
    logger.info("punctuation text: %s", {k: stats[k] for k in ("paragraphs", "lines", "chars")})
    if excluded and not banned:
        logger.warning("none of the %d excluded sentences occurs in %s", len(excluded), source_path)
    return stats

