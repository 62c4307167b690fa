#!/usr/bin/env bash
# Score a decode dir against a data dir: CER (and timestamp shift when the data dir has
# char_timestamps and the decode wrote time_stamp).
#
#   local/score.sh [--timestamps true|false] <data-dir> <decode-dir>
#   e.g. local/score.sh data/test exp/paraformer/decode_test
#
# Reads <data-dir>/text and <decode-dir>/1best_recog/{text,token,time_stamp}; writes
# <decode-dir>/{cer.txt,per_utt,errors.txt[,timestamp.txt]} (funasr_lite.bin.compute_cer) and
# prints the CER line and the timestamp.txt lines: %AAS (mean |hyp - ref| over correct and
# substituted chars), %AAS_COR (the same over correct chars only, with their count and share of
# the reference) and %BIAS_COR (mean signed hyp - ref over those chars; > 0 = late).
set -euo pipefail

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') ($(basename "$0"):${BASH_LINENO[0]}) $*" >&2; }

timestamps=true
help_message="Usage: $0 [--timestamps true|false] <data-dir> <decode-dir>"
# Works when called from the recipe (path.sh already sourced) or on its own.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/path.sh"
. parse_options.sh

if [ $# -ne 2 ]; then
  echo "$help_message" >&2
  exit 1
fi
data_dir=$1
decode_dir=$2

for f in "$data_dir/text" "$decode_dir/1best_recog/text"; do
  [ -f "$f" ] || { log "ERROR: no such file: $f"; exit 1; }
done

timestamp_args=()
if $timestamps && [ -f "$data_dir/char_timestamps" ] && [ -f "$decode_dir/1best_recog/time_stamp" ]; then
  timestamp_args=(--ref_timestamps "$data_dir/char_timestamps"
                  --hyp_timestamps "$decode_dir/1best_recog/time_stamp")
fi

log "scoring $decode_dir against $data_dir"
python -m funasr_lite.bin.compute_cer --ref "$data_dir/text" --hyp "$decode_dir/1best_recog/text" \
  --out_dir "$decode_dir" "${timestamp_args[@]}"
