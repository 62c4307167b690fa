#!/usr/bin/env bash
# The MWER study of issue #21 (RESULTS.md "MWER"): does one MWER epoch beat one CE-only epoch from
# the same plateaued checkpoint? The demo budget (9 epochs on all of train) ends still improving
# (~2 CER points an epoch), so the plateau is reached on less data: the demo model on a seeded
# random 2,000-utterance part of train (data/train_2k) for $base_epochs epochs, dev CER per epoch in
# exp/mwer_study/base/epochs.jsonl. Then, from its model.avg3.pt, for each seed: one CE epoch and one
# MWER epoch (stage 5's options: N=4, lambda=1, lr 2e-4 constant, no sortagrad) on another 2,000
# utterances of train (data/train_ft, disjoint: the base model has not memorised them, so its
# hypotheses have errors to learn from), each decoded greedy (and beam + CTC + LM when exp/lm has
# a model) on dev and test. Resumable: each step leaves a .done marker.
#   bash local/run_mwer_study.sh [--base_epochs 30] [--seeds "1 2"] [--mwer_args "..."] [--tag mwer]
#                                [--ft_args "..." --ce_tag ce]   (another lr: its own CE control)
set -euo pipefail
base_epochs=30
seeds="1 2"
tag=mwer                  # the MWER runs: exp/mwer_study/${tag}_s<seed>
ce_tag=ce                 # their CE controls: exp/mwer_study/${ce_tag}_s<seed> (same ft_args, no mwer_args)
mwer_args="++model_conf.mwer_weight=1.0 ++model_conf.mwer_num_candidates=4 ++model_conf.mwer_ce_weight=1.0"
ft_args="++optim_conf.lr=0.0002 ++scheduler=constantlr ++scheduler_conf={} ++dataset_conf.sortagrad=0"
subset_size=2000
lm_dir=exp/lm
beam_size=10
ctc_weight=0.3
lm_weight=1.0
nj=2
. ./path.sh
. utils/parse_options.sh
log() { echo "$(date '+%Y-%m-%d %H:%M:%S') (run_mwer_study.sh) $*" >&2; }
study=exp/mwer_study
mkdir -p "$study"

if [ ! -f data/train_ft/.done ]; then
  # One seeded shuffle of train: the first $subset_size utterances train the base, the next the epoch.
  python3 - "$subset_size" "$study" <<'EOF'
import random, sys
size, study = int(sys.argv[1]), sys.argv[2]
keys = sorted(line.split(maxsplit=1)[0] for line in open("data/train/text", encoding="utf-8"))
random.Random(1).shuffle(keys)
for name, part in (("train_2k", keys[:size]), ("train_ft", keys[size:2 * size])):
    with open(f"{study}/{name}.list", "w") as f:
        f.writelines(k + "\n" for k in sorted(part))
EOF
  for x in train_2k train_ft; do
    rm -rf "data/$x"
    utils/subset_data_dir.sh --utt-list "$study/$x.list" data/train "data/$x"
  done
  touch data/train_ft/.done
fi

train() {  # train() <data> <out> [trainer args]
  local data=$1 out=$2
  shift 2
  [ -f "$out/train.done" ] && { log "$out: trained"; return 0; }
  mkdir -p "$out"
  log "training $out on data/$data: $*"
  python -m funasr_lite.bin.train --config conf/demo.yaml --train_data "data/$data" --valid_data data/dev \
    --token_list data/lang_char/tokens.txt --cmvn_file data/train/am.mvn --output_dir "$out" "$@" \
    > "$out/train.stdout" 2>&1
}

decode() {  # decode() <exp> <checkpoint>
  local exp=$1 checkpoint=$2 modes=greedy
  [ -f "$lm_dir/model.avg1.pt" ] && modes="greedy beam_lm"
  for x in dev test; do
    for mode in $modes; do
      local dir=$exp/decode_${x}_$mode
      [ -f "$dir/cer.txt" ] && continue
      local args=(--decode_mode greedy)
      [ "$mode" = beam_lm ] && args=(--decode_mode beam --beam_size "$beam_size" --ctc_weight "$ctc_weight"
                                     --lm_dir "$lm_dir" --lm_weight "$lm_weight")
      python -m funasr_lite.bin.infer --exp_dir "$exp" --checkpoint "$checkpoint" --data_dir "data/$x" \
        --output_dir "$dir" --num_threads "$nj" "${args[@]}" > "$dir.log" 2>&1
      python -m funasr_lite.bin.compute_cer --ref "data/$x/text" --hyp "$dir/1best_recog/text" --out_dir "$dir" \
        > /dev/null
    done
  done
}

# shellcheck disable=SC2086
train train_2k "$study/base" ++train_conf.max_epoch="$base_epochs" ++train_conf.avg_nbest_model=3 \
  ++train_conf.keep_nbest_models="$base_epochs"
decode "$study/base" model.avg3.pt
for seed in $seeds; do
  # shellcheck disable=SC2086
  train train_ft "$study/${ce_tag}_s$seed" --init_param "$study/base/model.avg3.pt" ++seed="$seed" \
    ++train_conf.max_epoch=1 ++train_conf.avg_nbest_model=1 $ft_args
  # shellcheck disable=SC2086
  train train_ft "$study/${tag}_s$seed" --init_param "$study/base/model.avg3.pt" ++seed="$seed" \
    ++train_conf.max_epoch=1 ++train_conf.avg_nbest_model=1 $ft_args $mwer_args
  decode "$study/${ce_tag}_s$seed" model.avg1.pt
  decode "$study/${tag}_s$seed" model.avg1.pt
done

# The table: CER (%) of each run and set.
runs=("$study/base")
for seed in $seeds; do runs+=("$study/${ce_tag}_s$seed" "$study/${tag}_s$seed"); done
for exp in "${runs[@]}"; do
  for f in "$exp"/decode_*/cer.txt; do
    if [ -f "$f" ]; then  # (a bare `[ ] &&` would make a missing last file the script's exit status)
      printf '%s\t%s\t%s\n' "$(basename "$exp")" "$(basename "$(dirname "$f")")" "$(awk '{print $2}' "$f")"
    fi
  done
done | tee "$study/${tag}_table.tsv"
