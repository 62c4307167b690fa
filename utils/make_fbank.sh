#!/usr/bin/env bash
# Kaldi make_fbank.sh analogue: Kaldi fbank for a data dir, split into nj parallel jobs.
#
#   utils/make_fbank.sh [--nj 4] [--cmd run_local.py] [--fbank-config conf/demo.yaml] [--resample true] \
#       [--dither 0] [--channel N] <data-dir> <log-dir> <fbank-dir>
#
# The fbank options (fs, window, n_mels, frame_length, frame_shift) come from --fbank-config: the
# training config (or a model dir's config.yaml when fine-tuning), whose frontend_conf the model
# is trained and decoded with; without it, FunASR's defaults (16 kHz, hamming, 80 bins, 25/10 ms).
# Reads <data-dir>/wav.scp (and <data-dir>/utt2speed if present: `sp0.9-UTT 0.9`), writes
# <fbank-dir>/raw_fbank_<name>.JOB.{ark,scp}, then <data-dir>/feats.scp and
# <data-dir>/utt2num_frames (sorted), <data-dir>/fbank.dropped (utterances that failed, with the
# reason) and <data-dir>/fbank.json (the options used; training and decoding check it against
# the model's frontend_conf). Use dither 0 for decoding and CMVN statistics (> 0 only for training).
# Needs split_scp.py and the job runner on PATH (`. path.sh`).
set -euo pipefail

log() { echo "$(basename "$0"): $*" >&2; }

nj=4
cmd=run_local.py
resample=true
dither=0
channel=
fbank_config=
help_message="Usage: $0 [options] <data-dir> <log-dir> <fbank-dir>
  --nj 4                 parallel jobs
  --cmd run_local.py     job runner (run_local.py, run_slurm.py ...)
  --resample true        resample other sample rates to 16 kHz (false: drop them)
  --dither 0             0 for decoding and CMVN statistics; > 0 only for training features
  --channel N            0-based channel of multichannel files (default: their mean, as FunASR)
  --fbank-config FILE    config whose frontend_conf gives the fbank options (a training or model-dir
                         config.yaml, or a fbank.json; default: FunASR's defaults)"

# shellcheck disable=SC1091
. "$(dirname "$0")/parse_options.sh"

if [ $# -ne 3 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
data=$1
logdir=$2
fbankdir=$3

[ -f "$data/wav.scp" ] || { log "no such file $data/wav.scp"; exit 1; }
[ -f "$data/segments" ] && { log "$data/segments: segmented data dirs are not supported"; exit 1; }
[[ "$nj" =~ ^[1-9][0-9]*$ ]] || { log "--nj must be a positive integer, got '$nj'"; exit 1; }

name=$(basename "$data")
mkdir -p "$logdir" "$fbankdir"
fbankdir=$(cd "$fbankdir" && pwd)  # feats.scp refers to the arks by absolute path

num_utts=$(grep -c . "$data/wav.scp" || true)
[ "$num_utts" -gt 0 ] || { log "$data/wav.scp is empty"; exit 1; }
if [ "$nj" -gt "$num_utts" ]; then
  log "only $num_utts utterances: using nj=$num_utts instead of $nj"
  nj=$num_utts
fi

# Outputs of an earlier run (possibly with another nj) must not be merged into this one.
rm -f "$fbankdir/raw_fbank_$name".*.ark "$fbankdir/raw_fbank_$name".*.scp \
      "$fbankdir/raw_fbank_$name".*.scp.dropped "$logdir/wav_$name".*.scp "$logdir/utt2num_frames_$name".* \
      "$logdir/fbank_options_$name".*.json "$data/fbank.json"

split_outputs=()
for n in $(seq "$nj"); do split_outputs+=("$logdir/wav_$name.$n.scp"); done
split_scp.py "$data/wav.scp" "${split_outputs[@]}"

# utt2speed is small: every job gets all of it and looks up its own utterances.
speed_opts=()
if [ -f "$data/utt2speed" ]; then
  speed_opts=(--utt2speed "$data/utt2speed")
  log "speed factors from $data/utt2speed"
fi
channel_opts=()
[ -n "$channel" ] && channel_opts=(--channel "$channel")
config_opts=()
[ -n "$fbank_config" ] && config_opts=(--config "$fbank_config")
options=$(python -m funasr_lite.bin.compute_fbank "${config_opts[@]}" --dither "$dither" --print_options) ||
  { log "cannot read the fbank options of ${fbank_config:-the defaults}"; exit 1; }

log "computing fbank for $data ($num_utts utterances, nj=$nj, resample=$resample): $options"
# $cmd is unquoted on purpose: it may carry runner options, e.g. "run_slurm.py --mem 4G".
# shellcheck disable=SC2086
$cmd JOB=1:"$nj" "$logdir/make_fbank_$name.JOB.log" \
  python -m funasr_lite.bin.compute_fbank \
    --wav_scp "$logdir/wav_$name.JOB.scp" "${speed_opts[@]}" "${channel_opts[@]}" "${config_opts[@]}" \
    --out_ark "$fbankdir/raw_fbank_$name.JOB.ark" \
    --out_scp "$fbankdir/raw_fbank_$name.JOB.scp" \
    --out_utt2num_frames "$logdir/utt2num_frames_$name.JOB" \
    --out_options "$logdir/fbank_options_$name.JOB.json" \
    --resample "$resample" --dither "$dither" ||
  { log "fbank jobs failed; see $logdir/make_fbank_$name.*.log"; exit 1; }

merge_sorted() {  # merge_sorted <output> <inputs...>: C-sorted by utterance id, written atomically
  local output=$1; shift
  cat "$@" | LC_ALL=C sort -k1,1 > "$output.tmp"
  mv "$output.tmp" "$output"
}
scps=(); frames=(); dropped=()
for n in $(seq "$nj"); do
  scps+=("$fbankdir/raw_fbank_$name.$n.scp")
  frames+=("$logdir/utt2num_frames_$name.$n")
  dropped+=("$fbankdir/raw_fbank_$name.$n.scp.dropped")
done
merge_sorted "$data/feats.scp" "${scps[@]}"
merge_sorted "$data/utt2num_frames" "${frames[@]}"
merge_sorted "$data/fbank.dropped" "${dropped[@]}"
# Every job recorded the options it used; they must be one set, which goes beside the features.
for n in $(seq 2 "$nj"); do
  cmp -s "$logdir/fbank_options_$name.1.json" "$logdir/fbank_options_$name.$n.json" ||
    { log "fbank jobs 1 and $n used different options (see $logdir/fbank_options_$name.*.json)"; exit 1; }
done
cp "$logdir/fbank_options_$name.1.json" "$data/fbank.json.tmp"
mv "$data/fbank.json.tmp" "$data/fbank.json"

num_written=$(grep -c . "$data/feats.scp" || true)
num_dropped=$(grep -c . "$data/fbank.dropped" || true)
summary="$num_utts utterances, $num_written with features, $num_dropped dropped"
if [ "$num_dropped" -gt 0 ]; then
  reasons=$(awk '{print $2}' "$data/fbank.dropped" | LC_ALL=C sort | uniq -c | sort -k1,1nr -k2,2 |
            awk '{gsub("_", " ", $2); printf "%s%d %s", (NR > 1 ? ", " : ""), $1, $2}')
  summary="$summary: $reasons (details in $data/fbank.dropped)"
fi
log "$data: $summary"
log "done: $data/feats.scp, $data/utt2num_frames, $data/fbank.json"
