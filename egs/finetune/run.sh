#!/usr/bin/env bash
# Fine-tune a released Paraformer model dir on your own data (README.md here says more):
#   bash run.sh --model_dir /path/to/released_model --data_dir /path/to/example_data
#   bash run.sh --model_dir M --data_dir D --dataset_type large --batch_bins 20000   # tar shards, ms
#   bash run.sh --demo true --model_dir ../aishell1/exp/demo/model_dir                # the new-domain demo
# <data_dir>/{train,validation}/{text,wav.scp}; everything goes to --output_dir.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
. ./path.sh
. ./cmd.sh

# ---- options (each can be given as --name value) ----
stage=0                    # first stage (0: demo data, only with --demo true)
stop_stage=6               # last stage (6: score)
model_dir=                 # the released model dir (config.yaml, model.pt|pb, am.mvn, tokens.json|txt)
data_dir=example_data      # train/ and validation/ with text and wav.scp
output_dir=exp/finetune    # checkpoints, logs, data/, model_dir/, decode_*/
dataset_type=small         # small: fbank stored once; large: tar shards, features on the fly
batch_bins=2000            # fbank frames (small) or milliseconds (large) per padded batch
max_epoch=50
lr=5e-5
num_avg=5                  # best epochs averaged into the model dir
nj=2                       # large: shard-writing processes
shard_size=1000            # large: utterances per shard
ngpu=0                     # >1: torchrun --nproc_per_node ngpu
finetune_args=             # extra "++key=value ..." for the trainer
forget_set=                # a data dir of the model's original domain, decoded before and after (forgetting)
demo=false                 # stage 0: make a new-domain example_data (product reviews, unseen voices)
demo_train_utts=400        # demo: training utterances of the new domain
demo_valid_utts=60         # demo: validation utterances
# ---- end of options ----
help_message="Usage: bash run.sh --model_dir DIR [--data_dir example_data] [--name value ...]
Stages: 0 demo data (--demo true) | 1 check data + features or shards | 2 decode validation with the
released model | 3 fine-tune | 4 average + model dir | 5 decode with the fine-tuned model dir | 6 score."
. utils/parse_options.sh

log() { echo -e "$(date '+%Y-%m-%d %H:%M:%S') (run.sh:${BASH_LINENO[0]}) $*" >&2; }
[ -n "$model_dir" ] || { log "give --model_dir (a released model dir)"; exit 1; }
[ -d "$model_dir" ] || { log "no such model dir: $model_dir"; exit 1; }
model_dir=$(cd "$model_dir" && pwd)
mkdir -p "$output_dir"
output_dir=$(cd "$output_dir" && pwd)

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ] && $demo; then
  log "stage 0: demo data: a new domain (product-review text, voices the demo corpus never used) -> $data_dir"
  python "local/make_heldout_set.py" --out data/newdomain_train --num_utts "$demo_train_utts" --seed 11
  python "local/make_heldout_set.py" --out data/newdomain_validation --num_utts "$demo_valid_utts" --seed 12
  for split in train validation; do
    mkdir -p "$data_dir/$split"
    cp "data/newdomain_$split/wav.scp" "data/newdomain_$split/text" "$data_dir/$split/"
  done
fi

finetune=(python -m funasr_lite.bin.finetune --model_dir "$model_dir" --data_dir "$data_dir" --output_dir "$output_dir"
          --dataset_type "$dataset_type" --batch_bins "$batch_bins" --max_epoch "$max_epoch" --lr "$lr"
          --num_avg "$num_avg" --nj "$nj" --shard_size "$shard_size")

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  log "stage 1: check $data_dir against $model_dir, then $([ "$dataset_type" = large ] && echo shards || echo features) -> $output_dir/data (log: $output_dir/log/prepare.log)"
  # shellcheck disable=SC2086
  $train_cmd "$output_dir/log/prepare.log" "${finetune[@]}" --prepare_only true $finetune_args
  grep -h "utterances," "$output_dir"/data/*/data_check.txt >&2 || true
fi

# decode <model-dir> <data-dir> <out-dir>: greedy decoding of a data dir into <out-dir>/1best_recog
decode() {
  $decode_cmd "$3/log/decode.log" python -m funasr_lite.bin.infer --model_dir "$1" --data_dir "$2" \
    --output_dir "$3" --num_threads 1
}
decode_sets() {  # name data-dir pairs decoded before and after
  echo "validation $output_dir/data/validation"
  [ -n "$forget_set" ] && echo "forget $(cd "$forget_set" && pwd)"
  return 0
}

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  decode_sets | while read -r name dir; do
    log "stage 2: decode $dir with the released model -> $output_dir/decode_${name}_before"
    decode "$model_dir" "$dir" "$output_dir/decode_${name}_before"
  done
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  launcher=("${finetune[@]}")
  [ "$ngpu" -gt 1 ] && launcher=(torchrun --standalone --nproc_per_node "$ngpu" "${finetune[@]:1}")
  log "stage 3: fine-tune -> $output_dir (log: $output_dir/train.log)"
  # shellcheck disable=SC2086
  $train_cmd "$output_dir/log/finetune.log" "${launcher[@]}" $finetune_args
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "stage 4: average the $num_avg best epochs, model dir -> $output_dir/model_dir"
  python -m funasr_lite.bin.average_checkpoints --exp_dir "$output_dir" --num "$num_avg"
  python -m funasr_lite.bin.export_model_dir --exp_dir "$output_dir" --checkpoint "model.avg$num_avg.pt" \
    --out_dir "$output_dir/model_dir"
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  decode_sets | while read -r name dir; do
    log "stage 5: decode $dir with the fine-tuned model dir -> $output_dir/decode_${name}_after"
    decode "$output_dir/model_dir" "$dir" "$output_dir/decode_${name}_after"
  done
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  decode_sets | while read -r name dir; do
    for when in before after; do
      [ -d "$output_dir/decode_${name}_$when/1best_recog" ] || continue
      local/score.sh --timestamps false "$dir" "$output_dir/decode_${name}_$when" >/dev/null
    done
    log "stage 6: $name: CER before -> after fine-tuning:"
    grep -H . "$output_dir/decode_${name}"_{before,after}/cer.txt >&2 || true
  done
fi

log "done (stages $stage..$stop_stage)"
