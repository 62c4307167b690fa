"""Command-word scoring: what a command recogniser is judged by, per utterance, not per character.

Each reference utterance is a command (its text is one of the list) or a negative (anything
else: a near miss such as 打开冰箱, an ordinary sentence). The hypothesis *accepts* a command when
its text, spaces removed, equals one of the list exactly; anything else is a rejection.

* **command accuracy**: commands accepted as the right command / all commands.
* **command substitutions / rejections**: commands accepted as another command / not accepted.
* **false accepts**: negatives accepted as some command / all negatives (reported per kind when
  the kinds are given, e.g. ``near_miss`` and ``other`` from the command set's ``utt2kind``).
A missing hypothesis (an utterance the decoder skipped) is a rejection and is counted apart.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Mapping, Optional, Sequence


def _key(text: str) -> str:
    return "".join(text.split())


@dataclasses.dataclass
class CommandScore:
    commands: int = 0
    correct: int = 0
    substituted: int = 0
    rejected: int = 0
    missing: int = 0
    negatives: Dict[str, int] = dataclasses.field(default_factory=dict)  # kind -> utterances
    false_accepts: Dict[str, int] = dataclasses.field(default_factory=dict)  # kind -> accepted as a command

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / self.commands if self.commands else 0.0

    def false_accept_rate(self, kind: Optional[str] = None) -> float:
        kinds = [kind] if kind else list(self.negatives)
        total = sum(self.negatives.get(k, 0) for k in kinds)
        return 100.0 * sum(self.false_accepts.get(k, 0) for k in kinds) / total if total else 0.0

    def lines(self) -> List[str]:
        out = [f"%CMD_ACC {self.accuracy:.2f} % [ {self.correct} / {self.commands}, {self.substituted} as another "
               f"command, {self.rejected} rejected ]"]
        negatives = sum(self.negatives.values())
        out.append(f"%FA {self.false_accept_rate():.2f} % [ {sum(self.false_accepts.values())} / {negatives} "
                   f"negatives accepted as a command ]")
        for kind in sorted(self.negatives):
            out.append(f"%FA_{kind} {self.false_accept_rate(kind):.2f} % [ {self.false_accepts.get(kind, 0)} / "
                       f"{self.negatives[kind]} ]")
        if self.missing:
            out.append(f"missing hypotheses: {self.missing} (counted as rejections)")
        return out

    def as_dict(self) -> dict:
        return {"command_accuracy": round(self.accuracy, 2), "commands": self.commands, "correct": self.correct,
                "substituted": self.substituted, "rejected": self.rejected, "missing": self.missing,
                "false_accept_rate": round(self.false_accept_rate(), 2), "negatives": dict(self.negatives),
                "false_accepts": dict(self.false_accepts)}


def score_commands(refs: Mapping[str, str], hyps: Mapping[str, str], commands: Sequence[str],
                   kinds: Optional[Mapping[str, str]] = None) -> CommandScore:
    """Score ``hyps`` against ``refs`` (utt -> text) with the command list (module docstring).
    ``kinds``: utt -> kind of each negative (default: ``negative``); a reference whose text is a
    command is a command whatever its kind says."""
    command_set = {_key(c) for c in commands if _key(c)}
    if not command_set:
        raise ValueError("the command list is empty")
    score = CommandScore()
    for utt, ref in refs.items():
        hyp = hyps.get(utt)
        if hyp is None:
            score.missing += 1
        said, heard = _key(ref), _key(hyp or "")
        accepted = heard in command_set
        if said in command_set:
            score.commands += 1
            if heard == said:
                score.correct += 1
            elif accepted:
                score.substituted += 1
            else:
                score.rejected += 1
        else:
            kind = (kinds or {}).get(utt, "negative")
            score.negatives[kind] = score.negatives.get(kind, 0) + 1
            score.false_accepts[kind] = score.false_accepts.get(kind, 0) + int(accepted)
    return score


__all__ = ["CommandScore", "score_commands"]
