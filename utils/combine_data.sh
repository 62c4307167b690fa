#!/usr/bin/env bash
# Merge data dirs: the per-utt files present in every source are combined (utt2speed: present in
# any source is enough, utterances of the others get 1.0), spk2utt is regenerated, and an
# utterance id found in two sources is an error.
set -euo pipefail
log() { echo "$(date '+%Y-%m-%d %H:%M:%S') (combine_data.sh) $*" >&2; }
help_message="Usage: $0 <dst-data-dir> <src-data-dir1> [<src-data-dir2> ...]
  e.g. $0 data/train_sp data/train data/train_sp0.9 data/train_sp1.1"
. "$(dirname "${BASH_SOURCE[0]}")/parse_options.sh"
if [ $# -lt 2 ]; then log "expected a destination and at least one source"; echo "$help_message" >&2; exit 1; fi
exec python3 -m funasr_lite.bin.data_dir_tools combine "$@"
