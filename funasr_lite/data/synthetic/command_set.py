"""A command-word set for the synthetic corpus: smart-home commands said by the corpus's voices.

The seed card's Paraformer-tiny recognises "打开/关闭/调大/调小 音乐/空调/照明"-style commands
with a 544-character vocabulary. This set holds ``COMMANDS`` (36: switch a device on or off,
turn a level up or down, play control), said by each split's own voices (train voices for
cmd_train, the unseen test voices for cmd_test), and two kinds of negatives a command recogniser
must not accept:
- ``near_miss``: a command verb with something that is not a command's object (打开冰箱);
- ``other``: ordinary sentences of the corpus's text (6-12 characters, none holding a command),
  each split its own sentences.
Each command is said ``repeats[split]`` times by every voice of the split, each time with the
renderer's own seeded variation (prosody, noise, reverberation, syllable reading).

Output per split: a Kaldi data dir ``<out_root>/cmd_<split>`` (``wav.scp``, ``text``, ``utt2spk``,
``spk2utt``, ``char_timestamps``, ``utt2kind``: command | near_miss | other) and, beside them,
``commands.txt`` (the command list, one a line) and ``command_set.json`` (counts). The wavs go
under ``<corpus>/data_aishell/wav/cmd_<split>/``; utterance numbers start at ``FIRST_INDEX`` so
ids never collide with the corpus's own.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from funasr_lite.data.synthetic.corpus import (SIZES, CorpusError, CorpusSize, _render_all, utterance_id,
                                              write_rendered_data_dir)
from funasr_lite.data.synthetic.render import UtterancePlan
from funasr_lite.data.synthetic.text import extract_sentences, sentence_pinyin
from funasr_lite.data.synthetic.voices import make_speakers
from funasr_lite.utils.fileio import atomic_open

logger = logging.getLogger(__name__)

_SWITCHABLE = ("空调", "电视", "照明", "窗帘", "风扇", "音乐", "台灯", "加湿器", "热水器", "净化器")
_ADJUSTABLE = ("音量", "亮度", "温度", "风速")
# Each command is a tuple of words (the renderer reads word by word).
COMMANDS: Tuple[Tuple[str, ...], ...] = (
    tuple((verb, device) for verb in ("打开", "关闭") for device in _SWITCHABLE)
    + tuple((verb, level) for verb in ("调大", "调小") for level in _ADJUSTABLE)
    + (("播放",), ("暂停",), ("上一首",), ("下一首",), ("静音",), ("取消", "静音"), ("打开", "卧室", "灯"),
       ("关闭", "客厅", "灯"))
)
# Command verbs with objects no command has: a recogniser that maps them to a command is wrong.
_NEAR_MISS_OBJECTS = ("冰箱", "电脑", "大门", "车窗", "邮件", "文件", "书包", "抽屉", "水龙头", "手机")
NEAR_MISSES: Tuple[Tuple[str, ...], ...] = tuple(
    (verb, obj) for verb in ("打开", "关闭") for obj in _NEAR_MISS_OBJECTS)
SPLITS = ("train", "dev", "test")
KINDS = ("command", "near_miss", "other")
FIRST_INDEX = 5001
OTHER_CHARS = (6, 12)  # the "other" negatives' length range


def command_strings() -> List[str]:
    return ["".join(words) for words in COMMANDS]


def _other_sentences(text_path: str, counts: Dict[str, int], seed: int) -> Dict[str, List[Tuple[str, ...]]]:
    """Disjoint, seeded draws of ordinary sentences per split (none holds a command or near miss
    of the full lists)."""
    banned = command_strings() + ["".join(words) for words in NEAR_MISSES]
    candidates = [words for words in extract_sentences(text_path, *OTHER_CHARS)
                  if not any(b in "".join(words) for b in banned)]
    order = np.random.default_rng([seed, 21]).permutation(len(candidates))
    drawn, cursor = {}, 0
    for split in ("test", "dev", "train"):
        taken: List[Tuple[str, ...]] = []
        while len(taken) < counts[split] and cursor < len(order):
            words = candidates[int(order[cursor])]
            cursor += 1
            if sentence_pinyin(words) is not None:
                taken.append(words)
        if len(taken) < counts[split]:
            raise CorpusError(f"only {len(taken)} sentences for {split}'s negatives, need {counts[split]}")
        drawn[split] = taken
    return drawn


def _plans(split: str, voices, repeats: int, others: Sequence[Tuple[str, ...]], commands: Sequence[Tuple[str, ...]],
           near_misses: Sequence[Tuple[str, ...]]) -> List[Tuple[UtterancePlan, str]]:
    """Every voice says each command ``repeats`` times and each near miss once; the other
    sentences go round the voices."""
    items = [(words, "command") for _ in range(repeats) for words in commands]
    items += [(words, "near_miss") for words in near_misses]
    plans = []
    for v, voice in enumerate(voices):
        own = items + [(words, "other") for words in others[v::len(voices)]]
        plans += [(words, kind, voice, FIRST_INDEX + i) for i, (words, kind) in enumerate(own)]
    out = []
    for words, kind, voice, number in plans:
        syllables = sentence_pinyin(words)
        if syllables is None:
            raise CorpusError(f"{''.join(words)}: no speakable pinyin")
        out.append((UtterancePlan(utterance_id(voice.speaker_id, number), voice.speaker_id, f"cmd_{split}", number,
                                  tuple(words), tuple(syllables)), kind))
    return out


def build_command_set(corpus_dir: str, out_root: str, text_path: str, size: str = "small", seed: int = 1, nj: int = 2,
                      repeats: Optional[Dict[str, int]] = None, others: Optional[Dict[str, int]] = None,
                      corpus_size: Optional[CorpusSize] = None, commands: Sequence[Tuple[str, ...]] = COMMANDS,
                      near_misses: Sequence[Tuple[str, ...]] = NEAR_MISSES) -> dict:
    """Write the three data dirs (module docstring); returns the summary (also ``command_set.json``).
    ``repeats``/``others``: per split, how often each voice says each command / how many ordinary
    sentences; ``corpus_size``: the corpus's layout when it was made with one; ``commands`` and
    ``near_misses``: part of the lists (tests)."""
    repeats = {"train": 4, "dev": 1, "test": 2, **(repeats or {})}
    others = {"train": 1500, "dev": 60, "test": 200, **(others or {})}
    root = os.path.join(corpus_dir, "data_aishell")
    if not os.path.isdir(root):
        raise CorpusError(f"{root} not found: make the corpus first (stage -1)")
    speakers = make_speakers((corpus_size or SIZES[size]).speakers, seed)
    drawn = _other_sentences(text_path, others, seed)
    summary = {"commands": len(commands), "near_misses": len(near_misses), "seed": seed, "splits": {}}
    os.makedirs(out_root, exist_ok=True)
    with atomic_open(os.path.join(out_root, "commands.txt")) as f:
        f.writelines("".join(words) + "\n" for words in commands)
    for split in SPLITS:
        planned = _plans(split, speakers[split], repeats[split], drawn[split], commands, near_misses)
        kind_of = {plan.utt_id: kind for plan, kind in planned}
        plan_of = {plan.utt_id: plan for plan, _ in planned}
        results, dropped = _render_all(root, [plan for plan, _ in planned], speakers, seed, nj)
        out_dir = os.path.join(out_root, f"cmd_{split}")
        write_rendered_data_dir(out_dir, root, results, plan_of)
        with atomic_open(os.path.join(out_dir, "utt2kind")) as f:
            f.writelines(f"{r.utt_id} {kind_of[r.utt_id]}\n" for r in results)
        summary["splits"][split] = {
            "utterances": len(results), "dropped": len(dropped), "voices": len(speakers[split]),
            "hours": round(sum(r.num_samples for r in results) / 16000 / 3600, 3),
            **{kind: sum(1 for r in results if kind_of[r.utt_id] == kind) for kind in KINDS}}
        logger.info("command set %s: %s", out_dir, summary["splits"][split])
    with atomic_open(os.path.join(out_root, "command_set.json")) as f:
        json.dump(summary, f, ensure_ascii=False, indent=1)
    return summary


__all__ = ["COMMANDS", "KINDS", "NEAR_MISSES", "build_command_set", "command_strings"]
