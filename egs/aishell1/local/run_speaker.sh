#!/usr/bin/env bash
# Speaker verification (issue #25; docs/speaker.md "Training and EER"): FunASR's x-vector
# (conf/xvector_demo.yaml: the released sv.yaml's keys, narrower) trained with AAM-softmax on the
# training voices of the corpus, and scored on a VoxCeleb-style trial list over the unseen voices
# (dev + test: speakers never in train), beside the same model untrained (its initial weights).
# Needs the stored fbank of run.sh stage 1 (data/{train,dev,test}/feats.scp with fbank.json).
# Stages, each resumable (a .done marker with its parameters; training resumes by itself):
#   0 sets -> $sv_data: train (data/train minus the held-out utterances), valid (held out:
#     $heldout_per_speaker of every training voice), eval (dev + test combined), eval/trials
#   1 train -> exp/$exp_tag (the engine; validation EER over the pairs of valid)
#   2 model dirs -> exp/$exp_tag/model_dir (trained: model.pt) and model_dir_untrained (model.init.pt)
#   3 score eval/trials with each -> exp/$exp_tag/score_{trained,untrained}/{scores,eer.txt,eer.json}
#   bash local/run_speaker.sh [--stage 0 --stop_stage 3] [--train_args "++train_conf.max_epoch=2"]
set -euo pipefail
# ---- options (each can be given as --name value; `bash local/run_speaker.sh --help` lists them) ----
stage=0                   # first stage to run
stop_stage=3              # last stage to run
data=data                 # where the data dirs of run.sh stage 1 are
train_set=train           # training voices
eval_sets="dev test"      # unseen voices: combined into the trial set
sv_data=data/sv_xvector   # where this recipe's data dirs and lists go
heldout_per_speaker=8     # utterances of every training voice held out for validation
num_trials=4000           # trials over the unseen voices (half target, half nontarget)
seed=1                    # seed of the held-out choice and of the trial list
train_config=conf/xvector_demo.yaml   # speaker model + training config (sv.yaml keys)
exp_tag=xvector           # experiment name: exp/$exp_tag
train_args=               # extra trainer arguments, e.g. "++train_conf.max_epoch=2"
device=auto               # training device: auto | cpu | cuda
nj=2                      # torch threads of the scoring jobs
# ---- end of options
help_message="Usage: bash local/run_speaker.sh [--name value ...]
Speaker verification: train the x-vector on the training voices, EER on the unseen voices (docs/speaker.md)."
. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
log() { echo "$(date '+%Y-%m-%d %H:%M:%S') (run_speaker.sh:${BASH_LINENO[0]}) $*" >&2; }
stage_done() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }
exp_dir=exp/$exp_tag

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  eval_dirs=""
  for x in $eval_sets; do eval_dirs="$eval_dirs $data/$x"; done
  params="train=$data/$train_set eval=$eval_dirs heldout=$heldout_per_speaker trials=$num_trials seed=$seed"
  if stage_done "$sv_data/.sets.done" "$params"; then
    log "stage 0: $sv_data exists"
  else
    log "stage 0: held-out utterances, eval set ($eval_sets) and trials -> $sv_data"
    mkdir -p "$sv_data"
    for d in $data/$train_set $eval_dirs; do
      [ -s "$d/feats.scp" ] || { log "$d/feats.scp missing: run run.sh --stage 1 --stop_stage 1 first"; exit 1; }
    done
    python -m funasr_lite.bin.make_speaker_trials heldout --data_dir "$data/$train_set" \
      --per_speaker "$heldout_per_speaker" --seed "$seed" --out "$sv_data/valid.list" --out_rest "$sv_data/train.list"
    rm -rf "$sv_data/train" "$sv_data/valid" "$sv_data/eval"
    utils/subset_data_dir.sh --utt-list "$sv_data/train.list" "$data/$train_set" "$sv_data/train"
    utils/subset_data_dir.sh --utt-list "$sv_data/valid.list" "$data/$train_set" "$sv_data/valid"
    # shellcheck disable=SC2086
    utils/combine_data.sh "$sv_data/eval" $eval_dirs
    # the features are the sources' own: their fbank options go with them (the eval sets must agree)
    for x in train valid; do cp "$data/$train_set/fbank.json" "$sv_data/$x/fbank.json"; done
    first=$(echo $eval_dirs | cut -d' ' -f1)
    for d in $eval_dirs; do
      cmp -s "$first/fbank.json" "$d/fbank.json" || { log "$d/fbank.json differs from $first/fbank.json"; exit 1; }
    done
    cp "$first/fbank.json" "$sv_data/eval/fbank.json"
    python -m funasr_lite.bin.make_speaker_trials trials --data_dir "$sv_data/eval" --num_trials "$num_trials" \
      --seed "$seed" --out "$sv_data/eval/trials"
    echo "$params" > "$sv_data/.sets.done"
  fi
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "stage 1: train $train_config -> $exp_dir (log: $exp_dir/train.log)"
  mkdir -p "$exp_dir"
  # shellcheck disable=SC2086
  $train_cmd "$exp_dir/log/train.log" python -m funasr_lite.bin.train_speaker --config "$train_config" \
    --train_data "$sv_data/train" --valid_data "$sv_data/valid" --output_dir "$exp_dir" --device "$device" \
    $train_args
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  for kind in trained untrained; do
    checkpoint=model.pt; out=$exp_dir/model_dir
    [ $kind = untrained ] && checkpoint=model.init.pt && out=$exp_dir/model_dir_untrained
    params="checkpoint=$checkpoint $(stat -c %Y "$exp_dir/$checkpoint")"
    if stage_done "$out/.done" "$params"; then log "stage 2: $out exists"; continue; fi
    log "stage 2: $kind speaker model dir ($checkpoint) -> $out"
    python -m funasr_lite.bin.export_model_dir --exp_dir "$exp_dir" --checkpoint "$checkpoint" --out_dir "$out"
    echo "$params" > "$out/.done"
  done
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  for kind in trained untrained; do
    model=$exp_dir/model_dir; [ $kind = untrained ] && model=$exp_dir/model_dir_untrained
    dir=$exp_dir/score_$kind
    params="model=$(stat -c %Y "$model/model.pt") trials=$(stat -c %Y "$sv_data/eval/trials")"
    if ! stage_done "$dir/.done" "$params"; then
      log "stage 3: score $sv_data/eval/trials with the $kind model -> $dir"
      mkdir -p "$dir/log"
      $decode_cmd "$dir/log/score.log" python -m funasr_lite.bin.score_speaker --model_dir "$model" \
        --data_dir "$sv_data/eval" --trials "$sv_data/eval/trials" --out_dir "$dir" --num_threads "$nj"
      echo "$params" > "$dir/.done"
    fi
    log "$kind: $(grep -v '^#' "$dir/eer.txt" | head -2 | tr '\n' ' ')"
  done
fi
