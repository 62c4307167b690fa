#!/usr/bin/env bash
# Speed-perturbed copy of a data dir, Kaldi naming: utterance sp<factor>-UTT, speaker
# sp<factor>-SPK. wav.scp keeps the same audio; a new utt2speed (sp0.9-UTT 0.9) tells the feature
# extractor to change the speed (no sox). text/utt2spk are copied with the new ids, spk2utt is
# regenerated, utt2dur is scaled; feats.scp, utt2num_frames, char_timestamps are not copied.
set -euo pipefail
log() { echo "$(date '+%Y-%m-%d %H:%M:%S') (perturb_data_dir_speed.sh) $*" >&2; }
help_message="Usage: $0 <factor> <src-data-dir> <dst-data-dir>
  e.g. $0 0.9 data/train data/train_sp0.9"
. "$(dirname "${BASH_SOURCE[0]}")/parse_options.sh"
if [ $# -ne 3 ]; then log "expected 3 arguments"; echo "$help_message" >&2; exit 1; fi
exec python3 -m funasr_lite.bin.data_dir_tools perturb-speed "$1" "$2" "$3"
