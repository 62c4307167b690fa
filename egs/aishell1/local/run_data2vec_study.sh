#!/usr/bin/env bash
# The data2vec study of issue #25 item 1 (docs/data2vec.md "Pretraining and fine-tuning in the
# recipe"): does pretraining the encoder on the train AUDIO (transcripts ignored) help a Paraformer
# that has only 10% of the train TRANSCRIPTS? Run from egs/aishell1 after run.sh stages -1..2
# (data/{train,dev,test} with features, data/lang_char/tokens.txt).
#   1. data/train_10pct: a seeded random $subset_percent% of data/train's utterances (the only
#      transcripts the fine-tuning sees); data/train/am_lfr1.mvn: 80-dim CMVN of all train audio.
#   2. $study/pretrain: data2vec ($pretrain_config) on all of data/train's audio (its text is not
#      read), validated by the pretraining loss on data/dev's audio; its wall time is logged.
#   3. $study/ft_pretrained: $finetune_config on data/train_10pct, encoder from the end of
#      pretraining (--init_encoder $study/pretrain/checkpoint_latest.pt);
#      $study/ft_scratch: the same config, data, seed and budget (max_epoch, batches), encoder from
#      random weights (+ $scratch_args: by default its conv extractor trains, which the pretrained
#      one does not, as in FunASR's fine-tuning config).
#   4. Greedy decoding of dev and test with each model.avg$num_avg.pt, CER; the table
#      ($study/table.tsv): run, dev CER, test CER, and the pretraining cost (updates, wall seconds).
# Resumable: each step leaves a marker (train.done, cer.txt, .done) and is skipped when it is
# there; an interrupted training resumes from its checkpoint_latest.pt. Start over: rm -r $study.
#   bash local/run_data2vec_study.sh [--subset_percent 10] [--pretrain_args "++train_conf.max_steps=3000"]
#                                    [--ft_args "++train_conf.max_epoch=20"] [--study exp/data2vec_study]
set -euo pipefail
pretrain_config=conf/data2vec_demo.yaml          # data2vec pretraining (model: data2vec)
finetune_config=conf/paraformer_data2vec_demo.yaml   # the Paraformer with that encoder
subset_percent=10         # percent of train utterances whose transcripts the fine-tuning uses
subset_seed=1             # seed of the random subset
pretrain_args=            # extra pretraining trainer arguments, e.g. "++train_conf.max_steps=3000"
ft_args=                  # extra trainer arguments of BOTH fine-tunings (the budget: ++train_conf.max_epoch=N)
scratch_args="++encoder_conf.feature_grad_mult=1.0"   # the from-scratch run only
num_avg=3                 # fine-tuning: average the best N epochs (dev CER) into model.avgN.pt
token_list=data/lang_char/tokens.txt
study=exp/data2vec_study
nj=2                      # decoding threads
. ./path.sh
. utils/parse_options.sh
log() { echo "$(date '+%Y-%m-%d %H:%M:%S') (run_data2vec_study.sh) $*" >&2; }
mkdir -p "$study"
for f in data/train/feats.scp data/dev/feats.scp data/test/feats.scp "$token_list"; do
  [ -f "$f" ] || { log "missing $f: run run.sh --stop_stage 2 first"; exit 1; }
done

# ---- 1. the 10% transcript subset and the 80-dim CMVN
subset=data/train_${subset_percent}pct
params="percent=$subset_percent seed=$subset_seed"
if [ ! -f "$subset/.done" ] || [ "$(cat "$subset/.done")" != "$params" ]; then
  python3 - "$subset_percent" "$subset_seed" "$study/train_${subset_percent}pct.list" <<'EOF'
import random, sys
percent, seed, out = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
keys = sorted(line.split(maxsplit=1)[0] for line in open("data/train/text", encoding="utf-8") if line.strip())
random.Random(seed).shuffle(keys)
part = sorted(keys[:max(1, round(len(keys) * percent / 100))])
with open(out, "w") as f:
    f.writelines(k + "\n" for k in part)
print(f"{len(part)} of {len(keys)} train utterances", file=sys.stderr)
EOF
  rm -rf "$subset"
  utils/subset_data_dir.sh --utt-list "$study/train_${subset_percent}pct.list" data/train "$subset"
  cp data/train/fbank.json "$subset/"   # the features' fbank options, checked by training
  echo "$params" > "$subset/.done"
  rm -rf "$study/ft_pretrained" "$study/ft_scratch"   # trained on another subset
fi
cmvn=data/train/am_lfr1.mvn   # all train audio: statistics need no transcripts
if [ ! -s "$cmvn" ]; then
  python -m funasr_lite.bin.compute_cmvn --feats_scp data/train/feats.scp --out_mvn "$cmvn" \
    --out_json data/train/cmvn_lfr1.json --lfr_m 1
fi

train() {  # train() <out> [bin/train arguments]: skipped when <out>/train.done exists
  local out=$1
  shift
  [ -f "$out/train.done" ] && { log "$out: trained"; return 0; }
  mkdir -p "$out"
  log "training $out: $*"
  python -m funasr_lite.bin.train --output_dir "$out" --cmvn_file "$cmvn" "$@" >> "$out/train.stdout" 2>&1
}

# ---- 2. pretraining on all train audio (text ignored); wall seconds of each invocation logged
pre=$study/pretrain
if [ ! -f "$pre/train.done" ]; then
  start=$(date +%s)
  rc=0
  # shellcheck disable=SC2086
  train "$pre" --config "$pretrain_config" --train_data data/train --valid_data data/dev $pretrain_args || rc=$?
  echo "$(( $(date +%s) - start ))" >> "$pre/wall_seconds"   # a failed invocation's time counts too
  [ $rc -eq 0 ] || { log "pretraining failed (exit $rc), see $pre/train.log"; exit $rc; }
fi

# ---- 3. fine-tuning on the subset: from the pretrained encoder, and from scratch, same budget
# shellcheck disable=SC2086
train "$study/ft_pretrained" --config "$finetune_config" --train_data "$subset" --valid_data data/dev \
  --token_list "$token_list" --init_encoder "$pre/checkpoint_latest.pt" \
  ++train_conf.avg_nbest_model="$num_avg" $ft_args
# shellcheck disable=SC2086
train "$study/ft_scratch" --config "$finetune_config" --train_data "$subset" --valid_data data/dev \
  --token_list "$token_list" ++train_conf.avg_nbest_model="$num_avg" $ft_args $scratch_args

# ---- 4. greedy decoding of dev and test, CER
for run in ft_pretrained ft_scratch; do
  for x in dev test; do
    dir=$study/$run/decode_${x}_greedy
    [ -f "$dir/cer.txt" ] && continue
    log "decoding data/$x with $study/$run/model.avg$num_avg.pt -> $dir"
    mkdir -p "$dir"
    python -m funasr_lite.bin.infer --exp_dir "$study/$run" --checkpoint "model.avg$num_avg.pt" \
      --data_dir "data/$x" --output_dir "$dir" --num_threads "$nj" --decode_mode greedy > "$dir.log" 2>&1
    python -m funasr_lite.bin.compute_cer --ref "data/$x/text" --hyp "$dir/1best_recog/text" --out_dir "$dir" \
      > /dev/null
  done
done

# ---- the table: CER (%) of each run, then the pretraining cost
{
  printf 'run\tdev_cer\ttest_cer\n'
  for run in ft_pretrained ft_scratch; do
    printf '%s\t%s\t%s\n' "$run" "$(awk '{print $2}' "$study/$run/decode_dev_greedy/cer.txt")" \
      "$(awk '{print $2}' "$study/$run/decode_test_greedy/cer.txt")"
  done
  printf 'pretrain_updates\t%s\n' "$(awk '{print $4}' "$pre/train.done")"
  printf 'pretrain_wall_seconds\t%s\n' "$(cat "$pre/wall_seconds" 2>/dev/null | awk '{s += $1} END {print s + 0}')"
} | tee "$study/table.tsv"
