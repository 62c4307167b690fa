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
train_config=conf/demo.yaml          # model + training config (FunASR config.yaml schema)
lfr_m=                     # LFR stacking for am.mvn (80 * lfr_m dims); default: the config's frontend_conf.lfr_m
exp_tag=                   # experiment name (default: the config's file name)
train_args=                # extra trainer arguments, e.g. "++train_conf.max_epoch=20 ++optim_conf.lr=1e-3"
ngpu=0                     # >1: torchrun --nproc_per_node ngpu (DDP)
num_avg=3                  # average this many best epochs into model.avg{N}.pt
mwer_epochs=1              # stage 5: MWER fine-tuning epochs from the averaged model
mwer_args="++model_conf.mwer_weight=1.0 ++model_conf.mwer_num_candidates=4 ++model_conf.mwer_ce_weight=1.0 ++optim_conf.lr=0.0002 ++scheduler=constantlr ++scheduler_conf={}"
help_message="Usage: bash run.sh [--stage N] [--stop_stage M] [--corpus synthetic|aishell] [--corpus_size tiny|small|full] [--nj N] ..."
. utils/parse_options.sh

log() { echo -e "$(date '+%Y-%m-%d %H:%M:%S') (run.sh:${BASH_LINENO[0]}) $*" >&2; }
# Each stage leaves a .done marker; the marker also records its parameters so a changed
# option reruns the stage instead of silently reusing stale outputs.
stage_done() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

[ -z "$lfr_m" ] && lfr_m=$(python -c "import sys, yaml; print((yaml.safe_load(open(sys.argv[1])).get('frontend_conf') or {}).get('lfr_m', 1))" "$train_config")
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

[ -z "$exp_tag" ] && exp_tag=$(basename "${train_config%.*}")
exp_dir=exp/$exp_tag
train_launcher=(python -m funasr_lite.bin.train)
[ "$ngpu" -gt 1 ] && train_launcher=(torchrun --standalone --nproc_per_node "$ngpu" -m funasr_lite.bin.train)

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "stage 4: train $train_config -> $exp_dir (log: $exp_dir/train.log)"
  mkdir -p "$exp_dir"
  # shellcheck disable=SC2086
  $train_cmd "$exp_dir/log/train.log" "${train_launcher[@]}" --config "$train_config" \
    --train_data "data/$train_set" --valid_data data/dev --token_list "$lang_dir/tokens.txt" \
    --cmvn_file "data/$train_set/am.mvn" --output_dir "$exp_dir" \
    ++train_conf.avg_nbest_model="$num_avg" $train_args   # the trainer writes model.avg$num_avg.pt
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "stage 5: MWER fine-tuning from $exp_dir/model.avg$num_avg.pt -> ${exp_dir}_mwer"
  mkdir -p "${exp_dir}_mwer"
  # shellcheck disable=SC2086
  $train_cmd "${exp_dir}_mwer/log/train.log" "${train_launcher[@]}" --config "$exp_dir/config.yaml" \
    --train_data "data/$train_set" --valid_data data/dev --token_list "$lang_dir/tokens.txt" \
    --cmvn_file "data/$train_set/am.mvn" --output_dir "${exp_dir}_mwer" \
    --init_param "$exp_dir/model.avg$num_avg.pt" \
    ++train_conf.max_epoch="$mwer_epochs" ++train_conf.avg_nbest_model=1 $mwer_args
fi

log "done (stages $stage..$stop_stage)"
