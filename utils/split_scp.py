#!/usr/bin/env python3
"""Split a Kaldi scp/key-value file into N contiguous parts (Kaldi split_scp.pl semantics).

    split_scp.py [--utt2spk FILE] in.scp out.1 ... out.N

Line order is kept; part sizes differ by at most one line. With --utt2spk, no speaker is split
across parts (the speakers' lines must be contiguous, as in a sorted data dir) and the parts are
balanced as well as whole speakers allow. More parts than lines (or than speakers) is an error.
"""
import argparse
import logging
import sys
from typing import List, Optional, Sequence

from funasr_lite.data.datadir import DataDirError, read_kv
from funasr_lite.utils.fileio import atomic_open

logger = logging.getLogger("split_scp.py")


def read_lines(path: str) -> List[str]:
    """Non-blank lines of ``path`` (newline kept); non-UTF-8 is an error naming the line."""
    lines = []
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DataDirError(f"{path}:{line_no}: not valid UTF-8") from None
            if line.strip():
                lines.append(line if line.endswith("\n") else line + "\n")
    return lines


def split_evenly(num_items: int, num_parts: int) -> List[int]:
    """Sizes of ``num_parts`` contiguous parts of ``num_items``; the first ones get the extra."""
    base, extra = divmod(num_items, num_parts)
    return [base + 1 if i < extra else base for i in range(num_parts)]


def split_by_speaker(group_sizes: Sequence[int], num_parts: int) -> List[int]:
    """Number of whole speaker groups per part, each part >= 1 group, cut where the running line
    count is closest to the even split."""
    total = sum(group_sizes)
    cumulative = [0]
    for size in group_sizes:
        cumulative.append(cumulative[-1] + size)
    cuts = [0]
    num_groups = len(group_sizes)
    for k in range(1, num_parts):
        target = total * k / num_parts
        lowest, highest = cuts[-1] + 1, num_groups - (num_parts - k)
        cuts.append(min(range(lowest, highest + 1), key=lambda b: (abs(cumulative[b] - target), b)))
    cuts.append(num_groups)
    return [cuts[i + 1] - cuts[i] for i in range(num_parts)]


def split_scp(in_path: str, out_paths: Sequence[str], utt2spk_path: Optional[str] = None) -> List[int]:
    """Write the parts; return the number of lines in each."""
    lines = read_lines(in_path)
    num_parts = len(out_paths)
    if utt2spk_path is None:
        if num_parts > len(lines):
            raise DataDirError(f"{in_path}: {len(lines)} lines cannot be split into {num_parts} parts")
        sizes = split_evenly(len(lines), num_parts)
    else:
        utt2spk = read_kv(utt2spk_path)
        groups: List[List[str]] = []  # consecutive lines of one speaker
        group_speakers: List[str] = []
        seen = {}
        for line_no, line in enumerate(lines, 1):
            utt = line.split(maxsplit=1)[0]
            if utt not in utt2spk:
                raise DataDirError(f"{in_path}: utterance {utt!r} is not in {utt2spk_path}")
            spk = utt2spk[utt]
            if group_speakers and group_speakers[-1] == spk:
                groups[-1].append(line)
                continue
            if spk in seen:
                raise DataDirError(f"{in_path}: lines of speaker {spk!r} are not contiguous "
                                   f"(utterance {utt!r}; sort the file, or use speaker-prefixed utterance ids)")
            seen[spk] = True
            groups.append([line])
            group_speakers.append(spk)
        if num_parts > len(groups):
            raise DataDirError(f"{in_path}: {len(groups)} speakers cannot be split into {num_parts} parts")
        group_counts = split_by_speaker([len(g) for g in groups], num_parts)
        sizes, start = [], 0
        for count in group_counts:
            sizes.append(sum(len(g) for g in groups[start:start + count]))
            start += count
    start = 0
    for out_path, size in zip(out_paths, sizes):
        with atomic_open(out_path) as f:
            f.writelines(lines[start:start + size])
        start += size
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utt2spk", help="keep each speaker's lines in one part")
    parser.add_argument("in_scp")
    parser.add_argument("out_scps", nargs="+")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        sizes = split_scp(args.in_scp, args.out_scps, args.utt2spk)
    except (DataDirError, OSError) as e:
        logger.error("error: %s", e)
        return 1
    logger.debug("part sizes: %s", sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
