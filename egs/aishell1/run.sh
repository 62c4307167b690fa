#!/usr/bin/env bash
# AISHELL-1 Paraformer recipe. Runs on the embedded synthetic corpus by default (same layout as
# AISHELL-1), or on the real corpus with --corpus aishell.
#   bash run.sh                                  # everything on the small synthetic corpus
#   bash run.sh --stage 1 --stop_stage 1 --nj 4  # one stage again
#   bash run.sh --corpus aishell --corpus_root /data/aishell   # the real AISHELL-1
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
. ./path.sh
. ./cmd.sh

# ---- options (each can be given as --name value) ----
stage=-1
stop_stage=2
nj=2                       # parallel jobs for data preparation
corpus=synthetic           # synthetic | aishell
corpus_size=small          # synthetic corpus size: tiny | small | full
corpus_root=corpus         # where data_aishell/ is (or goes)
data_url=www.openslr.org/resources/33   # AISHELL-1 (openslr SLR33)
seed=1
speed_perturb=false        # 3-way speed perturbation (0.9/1.0/1.1) of train
resample=true              # resample wavs whose rate is not 16 kHz (false: refuse them)
token_type=char            # char | bpe
nbpe=500                   # BPE vocabulary size when token_type=bpe
lfr_m=7                    # LFR stacking of the model (am.mvn dimension = 80 * lfr_m)
help_message="Usage: bash run.sh [--stage N] [--stop_stage M] [--corpus synthetic|aishell] [--corpus_size tiny|small|full] [--nj N] ..."
. utils/parse_options.sh

log() { echo -e "$(date '+%Y-%m-%d %H:%M:%S') (run.sh:${BASH_LINENO[0]}) $*" >&2; }
# Each stage leaves a .done marker; the marker also records its parameters so a changed
# option reruns the stage instead of silently reusing stale outputs.
stage_done() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

train_set=train
$speed_perturb && train_set=train_sp
lang_dir=data/lang_$token_type
[ "$token_type" = bpe ] && lang_dir=data/lang_bpe_$nbpe

if [ $stage -le -1 ] && [ $stop_stage -ge -1 ]; then
  log "stage -1: corpus ($corpus)"
  if [ "$corpus" = synthetic ]; then
    python -m funasr_lite.bin.make_synthetic_corpus --out "$corpus_root" --size "$corpus_size" \
      --nj "$nj" --seed "$seed"
  elif [ "$corpus" = aishell ]; then
    local/download_and_untar.sh "$corpus_root" "$data_url" data_aishell
    local/download_and_untar.sh "$corpus_root" "$data_url" resource_aishell
  else
    log "unknown --corpus $corpus (synthetic|aishell)"; exit 1
  fi
fi

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  log "stage 0: data preparation -> data/{train,dev,test}"
  local/aishell_data_prep.sh "$corpus_root/data_aishell/wav" "$corpus_root/data_aishell/transcript" data
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "stage 1: fbank features (nj=$nj) and global CMVN"
  if $speed_perturb; then
    log "speed perturbation 0.9/1.0/1.1 -> data/train_sp"
    utils/perturb_data_dir_speed.sh 0.9 data/train data/train_sp0.9
    utils/perturb_data_dir_speed.sh 1.1 data/train data/train_sp1.1
    utils/combine_data.sh data/train_sp data/train data/train_sp0.9 data/train_sp1.1
    rm -rf data/train_sp0.9 data/train_sp1.1
    rm -f data/train_sp/.fbank.done   # the combined dir has no features yet
  fi
  for x in $train_set dev test; do
    params="resample=$resample"
    if stage_done "data/$x/.fbank.done" "$params" && [ -s "data/$x/feats.scp" ]; then log "data/$x: features exist"; continue; fi
    utils/make_fbank.sh --nj "$nj" --cmd "$train_cmd" --resample "$resample" \
      "data/$x" "exp/make_fbank/$x" fbank
    utils/fix_data_dir.sh "data/$x"
    utils/validate_data_dir.sh "data/$x"
    echo "$params" > "data/$x/.fbank.done"
  done
  python -m funasr_lite.bin.compute_cmvn --feats_scp "data/$train_set/feats.scp" \
    --out_mvn "data/$train_set/am.mvn" --out_json "data/$train_set/cmvn.json" --lfr_m "$lfr_m"
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "stage 2: token list ($token_type) from data/$train_set/text -> $lang_dir"
  python -m funasr_lite.bin.make_tokens --text "data/$train_set/text" --token_type "$token_type" \
    --nbpe "$nbpe" --out_dir "$lang_dir"
fi

log "done (stages $stage..$stop_stage)"
