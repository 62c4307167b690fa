#!/usr/bin/env bash
# Check a Kaldi data dir against the contract (see funasr_lite/data/datadir.py) and list ALL
# problems (file:line, the utterance ids, counts). Exit status 0 = valid, 1 = problems.
set -euo pipefail
log() { echo "$(date '+%Y-%m-%d %H:%M:%S') (validate_data_dir.sh) $*" >&2; }
usage="Usage: $0 [--no-feats] [--no-text] <data-dir>
  --no-feats  feats.scp is not required (e.g. before feature extraction)
  --no-text   text is not required (still checked when present)"
opts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-feats|--no-text) opts+=("$1"); shift ;;
    -h|--help) echo "$usage"; exit 0 ;;
    -*) log "unknown option $1"; echo "$usage" >&2; exit 1 ;;
    *) break ;;
  esac
done
if [ $# -ne 1 ]; then echo "$usage" >&2; exit 1; fi
exec python3 -m funasr_lite.bin.data_dir_tools validate ${opts[@]+"${opts[@]}"} "$1"
