#!/usr/bin/env bash
# Copy part of a data dir: the first N utterances (sorted order) or those listed in a file (first
# field per line; listed utterances the source lacks are reported and skipped). Every per-utt
# file is filtered and spk2utt regenerated.
set -euo pipefail
log() { echo "$(date '+%Y-%m-%d %H:%M:%S') (subset_data_dir.sh) $*" >&2; }
first=""
utt_list=""
help_message="Usage: $0 --first N | --utt-list FILE <src-data-dir> <dst-data-dir>"
. "$(dirname "${BASH_SOURCE[0]}")/parse_options.sh"
if [ $# -ne 2 ]; then log "expected <src> <dst>"; echo "$help_message" >&2; exit 1; fi
if [ -n "$first" ] && [ -n "$utt_list" ]; then log "give only one of --first and --utt-list"; exit 1; fi
if [ -n "$first" ]; then
  [[ "$first" =~ ^[0-9]+$ ]] || { log "--first needs a number, got '$first'"; exit 1; }
  exec python3 -m funasr_lite.bin.data_dir_tools subset --first "$first" "$1" "$2"
elif [ -n "$utt_list" ]; then
  exec python3 -m funasr_lite.bin.data_dir_tools subset --utt-list "$utt_list" "$1" "$2"
fi
log "give --first N or --utt-list FILE"; echo "$help_message" >&2; exit 1
