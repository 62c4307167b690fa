#!/usr/bin/env bash
# Repair a Kaldi data dir in place: keep only the utterances present in every per-utt file that
# exists (wav.scp, text, utt2spk, feats.scp, utt2num_frames, utt2speed; char_timestamps and
# utt2dur are filtered but never drop an utterance), drop empty transcripts and malformed or
# duplicate lines, sort, regenerate spk2utt. Originals are copied to <data-dir>/.backup/.
# Prints how many utterances were dropped and why.
set -euo pipefail
log() { echo "$(date '+%Y-%m-%d %H:%M:%S') (fix_data_dir.sh) $*" >&2; }
help_message="Usage: $0 <data-dir>"
. "$(dirname "${BASH_SOURCE[0]}")/parse_options.sh"
if [ $# -ne 1 ]; then log "expected one data dir"; echo "$help_message" >&2; exit 1; fi
exec python3 -m funasr_lite.bin.data_dir_tools fix "$1"
