"""Hotword lists -> token ids, as FunASR's ``generate_hotwords_list`` reads them (SeACo, Contextual).

A hotword spec is one of (FunASR's forms first):

* a string: every whitespace-separated word is one hotword (``"张三 李四"``);
* the path of an existing ``.txt`` file: one hotword per line; a line's whitespace-separated
  parts are its units (``"new york"`` is one hotword of two units);
* an ``http(s)://`` URL of such a file (fetched with the limits of :mod:`funasr_lite.utils.http_fetch`);
* ours: a list or tuple of strings, each one hotword (its whitespace-separated parts its units).

Each unit becomes tokens by FunASR's ``seg_tokenize`` when the model dir has a ``seg_dict`` (the
lower-cased unit looked up whole, else a run of CJK characters and digits split into characters
looked up one by one, else ``<unk>``); without a ``seg_dict`` a unit is looked up whole in the
token list, as FunASR does (a multi-character Chinese word is then one ``<unk>``: a warning
says so). The list always ends with ``[<s>]``, the "no hotword" entry.

Where we differ from FunASR 1.4.16, on purpose (docs/hotwords.md): a ``.txt`` path that does not
exist is an error (FunASR silently decodes without hotwords); empty lines are skipped (FunASR
crashes on them); files are read as UTF-8 with a byte-order mark removed (FunASR: the locale's
encoding, BOM kept); lists are accepted (FunASR crashes on them).
"""

from __future__ import annotations

import logging
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

from funasr_lite.utils.http_fetch import FetchError, fetch

logger = logging.getLogger(__name__)

SEG_DICT_NAME = "seg_dict"
LARGE_LIST = 10000  # a warning past this many hotwords
_CJK_OR_DIGITS = re.compile(r"^[\u4E00-\u9FA50-9]+$")  # FunASR's seg_tokenize pattern
_UNK = "<unk>"


class HotwordError(ValueError):
    """A hotword spec that cannot be read; the message names it."""


def read_seg_dict(path: str) -> Dict[str, str]:
    """FunASR's seg_dict: ``unit piece piece ...`` per line -> {unit: "piece piece ..."}."""
    table: Dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.strip().split()
            if fields:
                table[fields[0]] = " ".join(fields[1:])
    return table


SPECIAL_TOKENS = ("<blank>", "<s>", "</s>", "<unk>")


def write_vocabulary_seg_dict(path: str, token_list: Sequence[str]) -> None:
    """A seg_dict mapping every token of a vocabulary (special ones and tokens with spaces left
    out) to itself: what a character-vocabulary hotword model needs so that FunASR's
    ``seg_tokenize`` (and ours) split a Chinese hotword into its characters."""
    from funasr_lite.utils.fileio import atomic_open

    with atomic_open(path) as f:
        f.writelines(f"{token} {token}\n" for token in token_list
                     if token not in SPECIAL_TOKENS and not any(ch.isspace() for ch in token))


def seg_tokenize(units: Sequence[str], seg_dict: Dict[str, str]) -> List[str]:
    """FunASR's ``seg_tokenize``: units -> tokens through seg_dict."""
    pieces: List[str] = []
    for unit in units:
        unit = unit.lower()
        if unit in seg_dict:
            pieces += seg_dict[unit].split()
        elif _CJK_OR_DIGITS.match(unit):
            pieces += [seg_dict[char] if char in seg_dict else _UNK for char in unit]
        else:
            pieces.append(_UNK)
    return " ".join(pieces).split()


def _lines(text: str) -> List[str]:
    return [line.strip() for line in text.lstrip("\ufeff").splitlines() if line.strip()]


def hotword_units(spec) -> Optional[List[List[str]]]:
    """The hotwords of ``spec`` (module docstring) as unit lists; None for no hotwords."""
    if spec is None:
        return None
    if isinstance(spec, (list, tuple)):
        words = [str(word).split() for word in spec]
        return [units for units in words if units]
    if not isinstance(spec, str):
        raise HotwordError(f"hotwords must be a string, a .txt file, a URL or a list of strings, got {type(spec).__name__}")
    if spec.endswith(".txt") and not spec.startswith(("http://", "https://")):
        if not os.path.isfile(spec):
            raise HotwordError(f"hotword file {spec} does not exist")
        with open(spec, encoding="utf-8") as f:
            return [line.split() for line in _lines(f.read())]
    if spec.startswith("http"):
        try:
            text = fetch(spec).decode("utf-8")
        except (FetchError, UnicodeDecodeError) as e:
            raise HotwordError(f"hotword URL {spec}: {e}") from None
        return [line.split() for line in _lines(text)]
    return [[word] for word in spec.split()]


def hotword_ids(spec, tokenizer, sos_id: int, seg_dict: Optional[Dict[str, str]] = None
                ) -> Tuple[List[str], List[List[int]]]:
    """(hotwords as written, their token-id lists with ``[sos_id]`` last); ([], []) for none."""
    words = hotword_units(spec)
    if not words:
        if spec is not None:
            logger.warning("the hotword list is empty: decoding without hotwords")
        return [], []
    ids = []
    unknown = []
    unk_id = getattr(tokenizer, "unk_id", None)
    for units in words:
        tokens = seg_tokenize(units, seg_dict) if seg_dict is not None else list(units)
        ids.append(tokenizer.tokens2ids(tokens))
        if unk_id is not None and unk_id in ids[-1]:
            unknown.append(" ".join(units))
    if unknown:
        logger.warning("%d of %d hotwords hold tokens outside the vocabulary (read as <unk>), e.g. %s",
                       len(unknown), len(words), ", ".join(unknown[:5]))
    duplicates = len(words) - len({tuple(units) for units in words})
    if duplicates:
        logger.warning("%d duplicate hotwords (kept, as FunASR keeps them)", duplicates)
    if len(words) > LARGE_LIST:
        logger.warning("%d hotwords: recall falls as a list grows (the filter keeps nfilter of them per "
                       "utterance); consider a shorter list", len(words))
    if seg_dict is None and any(len(units) == 1 and len(units[0]) > 1 and _CJK_OR_DIGITS.match(units[0])
                                for units in words):
        logger.warning("no %s in the model dir: a hotword of several characters is looked up whole (FunASR "
                       "does the same) and is likely <unk>", SEG_DICT_NAME)
    return [" ".join(units) for units in words] + ["<s>"], ids + [[sos_id]]


__all__ = ["HotwordError", "SEG_DICT_NAME", "hotword_ids", "hotword_units", "read_seg_dict", "seg_tokenize",
           "write_vocabulary_seg_dict"]
