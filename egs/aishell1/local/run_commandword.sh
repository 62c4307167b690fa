#!/usr/bin/env bash
# Paraformer-tiny command words (issue #25; RESULTS.md "Command words"): the seed card's
# speech_paraformer-tiny-commandword model shape (conf/paraformer_tiny_commandword.yaml, ~5 M
# parameters, 544 characters) trained on the command set of the synthetic corpus: 36 smart-home
# commands said by the corpus's voices, with near misses (打开冰箱) and ordinary sentences as
# negatives (funasr_lite/data/synthetic/command_set.py). Needs the corpus (run.sh stage -1).
# Stages, each resumable (a .done marker with its parameters):
#   0 the set -> data/commandword/{cmd_train,cmd_dev,cmd_test}, commands.txt
#   1 fbank (the config's frontend_conf) + CMVN of cmd_train
#   2 tokens: the $max_tokens most frequent characters of cmd_train (the rest <unk>)
#   3 train -> exp/$exp_tag
#   4 decode cmd_dev and cmd_test (greedy, 1 thread, one job: the RTF is a 1-thread RTF) and score:
#     CER, command accuracy, false accepts per negative kind (compute_cer --command_list)
#   5 model dir + its size (parameters, model.pt MB) -> exp/$exp_tag/model_dir, size.json
#   bash local/run_commandword.sh [--stage 0 --stop_stage 5] [--train_args "++train_conf.max_epoch=5"]
set -euo pipefail
stage=0
stop_stage=5
nj=2
seed=1
corpus_root=corpus
corpus_size=small
train_config=conf/paraformer_tiny_commandword.yaml
exp_tag=commandword
train_args=
max_tokens=544
num_avg=3
set_args=                 # extra make_command_set arguments, e.g. "--repeats train=2 --others train=300"
data=data/commandword     # where the set's data dirs go
. ./path.sh
. ./cmd.sh
. utils/parse_options.sh
log() { echo "$(date '+%Y-%m-%d %H:%M:%S') (run_commandword.sh:${BASH_LINENO[0]}) $*" >&2; }
stage_done() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }
exp_dir=exp/$exp_tag
lang_dir=$data/lang_char

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  params="seed=$seed size=$corpus_size $set_args"
  if stage_done "$data/.set.done" "$params"; then
    log "stage 0: $data exists"
  else
    log "stage 0: command set -> $data"
    # shellcheck disable=SC2086
    python -m funasr_lite.bin.make_command_set --corpus "$corpus_root" --out "$data" --size "$corpus_size" \
      --seed "$seed" --nj "$nj" $set_args
    echo "$params" > "$data/.set.done"
  fi
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  fbank_options=$(python -m funasr_lite.bin.compute_fbank --config "$train_config" --print_options)
  for x in cmd_train cmd_dev cmd_test; do
    params="fbank=$fbank_options"
    if stage_done "$data/$x/.fbank.done" "$params" && [ -s "$data/$x/feats.scp" ]; then continue; fi
    log "stage 1: fbank $data/$x"
    utils/make_fbank.sh --nj "$nj" --cmd "$train_cmd" --fbank-config "$train_config" \
      "$data/$x" "exp/make_fbank/$x" fbank
    utils/fix_data_dir.sh "$data/$x"
    utils/validate_data_dir.sh "$data/$x"
    echo "$params" > "$data/$x/.fbank.done"
  done
  lfr_m=$(python -c "import sys, yaml; print((yaml.safe_load(open(sys.argv[1])).get('frontend_conf') or {}).get('lfr_m', 1))" "$train_config")
  python -m funasr_lite.bin.compute_cmvn --feats_scp "$data/cmd_train/feats.scp" \
    --out_mvn "$data/cmd_train/am.mvn" --out_json "$data/cmd_train/cmvn.json" --lfr_m "$lfr_m"
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  log "stage 2: tokens (at most $max_tokens) from $data/cmd_train/text -> $lang_dir"
  python -m funasr_lite.bin.make_tokens --text "$data/cmd_train/text" --token_type char \
    --max_tokens "$max_tokens" --out_dir "$lang_dir"
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  log "stage 3: train $train_config -> $exp_dir (log: $exp_dir/train.log)"
  mkdir -p "$exp_dir"
  # shellcheck disable=SC2086
  $train_cmd "$exp_dir/log/train.log" python -m funasr_lite.bin.train --config "$train_config" \
    --train_data "$data/cmd_train" --valid_data "$data/cmd_dev" --token_list "$lang_dir/tokens.txt" \
    --cmvn_file "$data/cmd_train/am.mvn" --output_dir "$exp_dir" \
    ++train_conf.avg_nbest_model="$num_avg" $train_args
  python local/plot_curves.py "$exp_dir" || log "warning: no curves for $exp_dir"
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  for x in cmd_dev cmd_test; do
    dir=$exp_dir/decode_${x}_greedy
    log "stage 4: decode $data/$x -> $dir (greedy, 1 thread)"
    mkdir -p "$dir/log"
    $decode_cmd "$dir/log/decode.log" python -m funasr_lite.bin.infer --exp_dir "$exp_dir" \
      --checkpoint "model.avg$num_avg.pt" --data_dir "$data/$x" --output_dir "$dir" --num_threads 1 \
      --decode_mode greedy
    python -m funasr_lite.bin.compute_cer --ref "$data/$x/text" --hyp "$dir/1best_recog/text" --out_dir "$dir" \
      --command_list "$data/commands.txt" --utt2kind "$data/$x/utt2kind"
  done
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "stage 5: model dir -> $exp_dir/model_dir"
  python -m funasr_lite.bin.export_model_dir --exp_dir "$exp_dir" --checkpoint "model.avg$num_avg.pt" \
    --out_dir "$exp_dir/model_dir"
  python - "$exp_dir" <<'EOF' | tee "$exp_dir/size.json"
import json, os, sys
import torch
exp = sys.argv[1]
state = torch.load(os.path.join(exp, "model_dir", "model.pt"), map_location="cpu", weights_only=True)
params = sum(v.numel() for k, v in state.items() if torch.is_floating_point(v))
by_part = {}
for k, v in state.items():
    if torch.is_floating_point(v):
        by_part[k.split(".")[0]] = by_part.get(k.split(".")[0], 0) + v.numel()
size_mb = os.path.getsize(os.path.join(exp, "model_dir", "model.pt")) / 2**20
print(json.dumps({"parameters": params, "by_part": by_part, "model_pt_mb": round(size_mb, 2)}))
EOF
fi
