#!/usr/bin/env bash
# AISHELL-1 data preparation: Kaldi data dirs <out-data-dir>/{train,dev,test}.
#
#   local/aishell_data_prep.sh <audio-dir> <transcript-dir> <out-data-dir>
#   e.g. local/aishell_data_prep.sh /export/data/data_aishell/wav \
#          /export/data/data_aishell/transcript data
#
# Writes wav.scp, text, utt2spk, spk2utt (+ char_timestamps when the transcript dir has
# aishell_char_timestamps.txt) per split, keeping only the transcripts of each split's wavs
# (the logic and the per-split summary live in funasr_lite/data/aishell.py), then repairs
# each dir with fix_data_dir.sh and checks it with validate_data_dir.sh --no-feats.
set -euo pipefail

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') ($(basename "$0"):${BASH_LINENO[0]}) $*" >&2; }

if [ $# -ne 3 ]; then
  echo "Usage: $0 <audio-dir> <transcript-dir> <out-data-dir>" >&2
  exit 1
fi
audio_dir=$1
transcript_dir=$2
out_dir=$3

# Works when called from the recipe (path.sh already sourced) or on its own.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/path.sh"

for dir in "$audio_dir" "$transcript_dir"; do
  [ -d "$dir" ] || { log "ERROR: no such directory: $dir"; exit 1; }
done

log "preparing $out_dir from $audio_dir and $transcript_dir"
splits=$(python -m funasr_lite.bin.aishell_data_prep "$audio_dir" "$transcript_dir" "$out_dir")

for split in $splits; do
  fix_data_dir.sh "$out_dir/$split"
  validate_data_dir.sh --no-feats "$out_dir/$split"
done
log "done: $(echo "$splits" | tr '\n' ' ')in $out_dir"
