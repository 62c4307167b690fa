#!/usr/bin/env bash
# Kaldi split_data.sh analogue: split a data dir into N parts, one per parallel job.
#
#   utils/split_data.sh <data-dir> <num-parts> [<split-dir>]
#
# Writes <split-dir>/1 .. <split-dir>/N (default <split-dir>: <data-dir>/split<N>), each a data
# dir holding its part of every per-utterance file, spk2utt rebuilt, and fbank.json copied. The
# parts are cut from the list a job reads (feats.scp when present, else wav.scp) by split_scp.py:
# contiguous, sizes within one utterance, order kept; each job then runs on `<split-dir>/JOB`.
# Numbered parts of an earlier split in <split-dir> are removed first. More parts than
# utterances is an error. Needs split_scp.py on PATH (`. path.sh`).
set -euo pipefail

log() { echo "$(basename "$0"): $*" >&2; }

help_message="Usage: $0 <data-dir> <num-parts> [<split-dir>]"
# shellcheck disable=SC1091
. "$(dirname "$0")/parse_options.sh"

if [ $# -ne 2 ] && [ $# -ne 3 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
data=$1
nj=$2
split_dir=${3:-$data/split$nj}

[[ "$nj" =~ ^[1-9][0-9]*$ ]] || { log "<num-parts> must be a positive integer, got '$nj'"; exit 1; }
input=$data/feats.scp
[ -f "$input" ] || input=$data/wav.scp
[ -f "$input" ] || { log "$data: neither feats.scp nor wav.scp"; exit 1; }
num_utts=$(grep -c . "$input" || true)
[ "$num_utts" -ge "$nj" ] ||
  { log "$input has $num_utts utterances: cannot split into $nj parts (use at most $num_utts jobs)"; exit 1; }

mkdir -p "$split_dir"
for part in "$split_dir"/*/; do  # an earlier split (maybe into more parts) must not be reused
  [ -d "$part" ] || continue
  case $(basename "$part") in *[!0-9]*) ;; *) rm -rf "$part" ;; esac
done
lists=()
for n in $(seq "$nj"); do lists+=("$split_dir/.keys.$n"); done
split_scp.py "$input" "${lists[@]}"
for n in $(seq "$nj"); do
  python -m funasr_lite.bin.data_dir_tools subset --utt-list "$split_dir/.keys.$n" "$data" "$split_dir/$n"
  [ -f "$data/fbank.json" ] && cp "$data/fbank.json" "$split_dir/$n/fbank.json"
  rm -f "$split_dir/.keys.$n"
done
log "$data: $num_utts utterances ($(basename "$input")) split into $split_dir/{1..$nj}"
