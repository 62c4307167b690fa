"""FunASR's windowed punctuation over text of any length (``CTTransformer.inference``).

Text -> tokens (:func:`split_words`: whitespace-separated pieces; a run of ASCII characters is
one token, every other character is its own token) -> mini-sentences of ``split_size`` tokens.
Each window is the *carry* (tokens left over from the previous window) followed by the next
mini-sentence; the model labels the whole window and

* for every window but the last, the labels up to the last ``。``/``？`` are kept and the tokens
  after it are carried into the next window. The mark is searched from the second-to-last token
  down to the third (FunASR's loop ``range(len - 2, 1, -1)``). With no sentence end, everything
  is carried; once the window is longer than ``CARRY_LIMIT`` (200) tokens the last ``，`` found in
  that search becomes a ``。`` and the cut is made there (no ``，`` either: it keeps growing);
* in the last window every label is kept, and the very last one becomes the sentence end
  (``sentence_end_id``) unless the text already ends in ``。``/``？`` (or ``.``/``?`` after an
  ASCII token).

The text is rendered as FunASR renders it: an ASCII token right after another ASCII token, or at
a window's first position, gets a space before it; an ASCII token at a window's start or after a
sentence end is ``str.capitalize()``-d; after an ASCII token ``，。？`` are written ``,.?``. One
difference: a predicted ``<unk>`` label is rendered as no punctuation (FunASR writes the string
``<unk>`` into the text).
"""

from __future__ import annotations

from typing import Callable, List, Sequence, Tuple

SENTENCE_ENDS = ("。", "？")
COMMA = "，"
CARRY_LIMIT = 200  # FunASR's cache_pop_trigger_limit
DEFAULT_SPLIT_SIZE = 20
_ASCII_MARKS = {"，": ",", "。": ".", "？": "?"}
_TEXT_ENDS = ("。", "？", ".", "?")


def is_ascii_token(token: str) -> bool:
    """True when the token starts with a one-byte (ASCII) character, FunASR's English-word test."""
    return bool(token) and len(token[0].encode("utf-8")) == 1


def split_words(text: str) -> List[str]:
    """FunASR's ``split_words`` without jieba: ``"我爱 New York2023年"`` ->
    ``['我', '爱', 'New', 'York2023', '年']``."""
    words: List[str] = []
    for piece in text.split():
        ascii_run = ""
        for ch in piece:
            if len(ch.encode("utf-8")) == 1:
                ascii_run += ch
                continue
            if ascii_run:
                words.append(ascii_run)
                ascii_run = ""
            words.append(ch)
        if ascii_run:
            words.append(ascii_run)
    return words


def split_to_mini_sentences(items: Sequence, split_size: int) -> List[list]:
    """Consecutive pieces of ``split_size`` items, the remainder last (one piece when short)."""
    if split_size < 2:
        raise ValueError(f"split_size must be at least 2, got {split_size}")
    items = list(items)
    if len(items) <= split_size:
        return [items]
    return [items[i : i + split_size] for i in range(0, len(items), split_size)]


def punctuation_mark(label: str, token: str) -> str:
    """The text written after ``token`` for a label name: "" for ``_``/``<unk>``; ``，。？`` become
    ``,.?`` after an ASCII token."""
    if label in ("_", "<unk>"):
        return ""
    return _ASCII_MARKS.get(label, label) if is_ascii_token(token) else label


def _render_window(tokens: Sequence[str], labels: Sequence[int], punc_list: Sequence[str]) -> str:
    """One window's text, as FunASR renders it (spaces and capitals of ASCII tokens)."""
    parts = []
    for i, token in enumerate(tokens):
        word = token
        if is_ascii_token(token):
            if i == 0 or punc_list[labels[i - 1]] in SENTENCE_ENDS:
                word = word.capitalize()
            if i == 0 or is_ascii_token(tokens[i - 1]):
                word = " " + word
        parts.append(word + punctuation_mark(punc_list[labels[i]], token))
    return "".join(parts)


def windowed_punctuation(
    tokens: Sequence[str],
    token_ids: Sequence[int],
    predict: Callable[[List[int]], List[int]],
    punc_list: Sequence[str],
    sentence_end_id: int,
    split_size: int = DEFAULT_SPLIT_SIZE,
) -> Tuple[List[int], str]:
    """Label every token with FunASR's windowing.

    tokens: the tokens (their text decides ASCII rendering); token_ids: their ids, same length.
    predict: ids of one window -> the argmax label id of each of them.
    Returns (label ids, one per token; the rendered text). No tokens: ([], "").
    """
    if len(tokens) != len(token_ids):
        raise ValueError(f"{len(tokens)} tokens but {len(token_ids)} token ids")
    if not tokens:
        return [], ""
    windows = list(zip(split_to_mini_sentences(tokens, split_size), split_to_mini_sentences(token_ids, split_size)))
    carry_tokens: List[str] = []
    carry_ids: List[int] = []
    all_labels: List[int] = []
    text = ""
    for number, (window_tokens, window_ids) in enumerate(windows):
        window_tokens = carry_tokens + list(window_tokens)
        window_ids = carry_ids + [int(i) for i in window_ids]
        labels = [int(label) for label in predict(window_ids)]
        if len(labels) != len(window_ids):
            raise ValueError(f"predict returned {len(labels)} labels for {len(window_ids)} tokens")
        if number < len(windows) - 1:
            sentence_end, last_comma = -1, -1
            for i in range(len(labels) - 2, 1, -1):
                if punc_list[labels[i]] in SENTENCE_ENDS:
                    sentence_end = i
                    break
                if last_comma < 0 and punc_list[labels[i]] == COMMA:
                    last_comma = i
            if sentence_end < 0 and len(window_ids) > CARRY_LIMIT and last_comma >= 0:
                sentence_end = last_comma  # too long without a sentence end: cut at the comma
                labels[sentence_end] = sentence_end_id
            carry_tokens, carry_ids = window_tokens[sentence_end + 1 :], window_ids[sentence_end + 1 :]
            window_tokens, labels = window_tokens[: sentence_end + 1], labels[: sentence_end + 1]
            text += _render_window(window_tokens, labels, punc_list)
        else:
            text = _end_text(text + _render_window(window_tokens, labels, punc_list))
            # the text's last character decides; FunASR sees the string "<unk>" (ending in ">") there
            last_mark = punctuation_mark(punc_list[labels[-1]], window_tokens[-1]) or window_tokens[-1] or "_"
            if punc_list[labels[-1]] == "<unk>" or last_mark[-1] not in _TEXT_ENDS:
                labels[-1] = sentence_end_id
        all_labels += labels
    return all_labels, text


def _end_text(text: str) -> str:
    """FunASR's end of the text: a final ``，``/``、`` becomes ``。``, ``,`` becomes ``.``; a text not
    ending in ``。？`` (``.?`` after ASCII) gets one appended."""
    if not text:  # only empty tokens
        return text
    last = text[-1]
    if last in ("，", "、"):
        return text[:-1] + "。"
    if last == ",":
        return text[:-1] + "."
    if last not in _TEXT_ENDS:
        return text + ("." if len(last.encode("utf-8")) == 1 else "。")
    return text
