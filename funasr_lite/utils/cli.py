"""Helpers shared by the thin entry points in funasr_lite/bin/."""

import argparse
import copy
import os
import sys
from typing import Any, List, Optional, Sequence, Tuple

from funasr_lite.utils.config import OVERRIDE_PREFIX

CONSOLE_PREFIX = "funasr-lite-"  # console scripts: funasr-lite-<tool> (setup.py)


def str2bool(value: str) -> bool:
    """argparse type for Kaldi-style booleans: true/false (also 1/0, yes/no)."""
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def shows_default(action: argparse.Action) -> bool:
    """True for an option whose default ``--help`` shows: optional, with a default that is not
    None (None means "not given"; the help text says what happens then)."""
    return (bool(action.option_strings) and not action.required and action.default is not None
            and action.default is not argparse.SUPPRESS)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's own line breaks (usage examples) and appends ``(default: X)`` to
    every option that has a default its help text does not already state (also to options
    without a help text)."""

    def _format_action(self, action: argparse.Action) -> str:
        if not (action.help and action.help.strip()) and shows_default(action):
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> Optional[str]:
        text = action.help or ""
        if shows_default(action) and "default" not in text.lower():
            text += " (default: %(default)s)"
        return text


def console_script(module: str) -> str:
    """``funasr_lite.bin.train_lm`` -> ``funasr-lite-train-lm``."""
    return CONSOLE_PREFIX + module.rsplit(".", 1)[-1].replace("_", "-")


def command_name(module: str) -> str:
    """The command the user typed for the entry point ``module``: its console script when run
    as one, else ``python -m <module>`` (argparse would name the file, e.g. ``infer.py``)."""
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    console = console_script(module)
    return console if script == console else f"python -m {module}"


def make_parser(module: str, description: Optional[str] = None, **kwargs: Any) -> argparse.ArgumentParser:
    """The ArgumentParser of the entry point ``module`` (e.g. ``funasr_lite.bin.infer``): usage
    with the real command, the description's layout kept, defaults shown."""
    kwargs.setdefault("formatter_class", HelpFormatter)
    return argparse.ArgumentParser(prog=command_name(module), description=description, **kwargs)


def parse_args_with_overrides(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None,
                              example: str = f"{OVERRIDE_PREFIX}key.sub=value") -> Tuple[argparse.Namespace, List[str]]:
    """Parse ``argv``; the arguments the parser does not know must be config overrides
    (``++key.sub=value``): returns ``(args, overrides)``, any other unknown argument is a usage error."""
    args, extra = parser.parse_known_args(argv)
    bad = [arg for arg in extra if not arg.startswith(OVERRIDE_PREFIX)]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)} (config overrides look like {example})")
    return args, extra
