#!/usr/bin/env bash
# AISHELL-1 Paraformer recipe. Runs on the embedded synthetic corpus by default (same layout as
# AISHELL-1), or on the real corpus with --corpus aishell. The autoregressive baseline (FunASR's
# Conformer AED) runs through the same stages: --train_config conf/demo_aed.yaml (or
# conf/conformer_12e_6d_2048_256.yaml); stage 5 (MWER) is Paraformer-only and skipped for it.
#   bash run.sh                                  # everything on the small synthetic corpus
#   bash run.sh --stage 1 --stop_stage 1 --nj 4  # one stage again
#   bash run.sh --corpus aishell --corpus_root /data/aishell   # the real AISHELL-1
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
. ./path.sh
. ./cmd.sh

# ---- options (each can be given as --name value; `bash run.sh --help` lists them) ----
stage=-1                   # first stage to run (-1: corpus)
stop_stage=8               # last stage to run (8: model dir)
nj=2                       # parallel jobs (corpus, features, decoding)
corpus=synthetic           # synthetic | aishell
corpus_size=small          # synthetic corpus size: tiny | small | full
corpus_root=corpus         # where data_aishell/ is (or goes)
data_url=www.openslr.org/resources/33   # AISHELL-1 (openslr SLR33)
seed=1                     # random seed of the synthetic corpus
speed_perturb=false        # 3-way speed perturbation (0.9/1.0/1.1) of train
resample=true              # resample wavs whose rate is not 16 kHz (false: refuse them)
token_type=char            # char | bpe
nbpe=500                   # BPE vocabulary size when token_type=bpe
train_config=conf/demo.yaml          # model + training config (FunASR config.yaml schema)
lfr_m=                     # LFR stacking for am.mvn (80 * lfr_m dims); default: the config's frontend_conf.lfr_m
lm_config=conf/lm.yaml     # stage 3: Transformer LM for shallow fusion
lm_extra_text=auto         # stage 3: more LM text (one sentence a line) beside data/train/text; auto: the synthetic corpus's lm_extra_text.txt when present; none: train text only
lm_dir=exp/lm              # stage 3 output (config.yaml + model.avg1.pt, the engine's final model); the LM of the beam_lm decode mode
lm_args=                   # extra LM trainer arguments, e.g. "++train_conf.max_epoch=10"
exp_tag=                   # experiment name (default: the config's file name)
train_args=                # extra trainer arguments, e.g. "++train_conf.max_epoch=20 ++optim_conf.lr=1e-3"
ngpu=0                     # >1: torchrun --nproc_per_node ngpu (DDP)
num_avg=3                  # average this many best epochs into model.avg{N}.pt
mwer_epochs=1              # stage 5: MWER fine-tuning epochs from the averaged model
mwer_args="++model_conf.mwer_weight=1.0 ++model_conf.mwer_num_candidates=4 ++model_conf.mwer_ce_weight=1.0 ++optim_conf.lr=0.0002 ++scheduler=constantlr ++scheduler_conf={} ++dataset_conf.sortagrad=0"   # stage 5: trainer arguments of the MWER fine-tuning
decode_exp=                # stages 6-8: experiment to decode/export (default: the stage-4 exp)
decode_checkpoint=         # weights to decode (default: model.avg$num_avg.pt; model.avg1.pt for an *_mwer exp)
decode_sets="dev test"     # data sets to decode and score (stages 6-7)
decode_modes="greedy beam_lm"   # greedy | greedy_int8 (greedy, the Linears int8 on the CPU: infer --quantized) | beam (beam + CTC) | beam_lm (beam + CTC + LM) | ctc_greedy (CTC best path) | streaming (a ParaformerStreaming model: infer --streaming; its default)
stream_chunk_size=0,10,5   # streaming mode: left,step,look-ahead LFR frames (0,10,5 = 600 ms steps; 0,8,4 = 480 ms)
stream_piece_ms=600        # streaming mode: audio per feed() call (docs/streaming.md)
beam_size=10               # beam width of the beam and beam_lm modes
ctc_weight=0.3             # CTC prefix-score weight in beam search (the model must have a CTC branch)
lm_weight=1.0              # LM shallow-fusion weight of the beam_lm mode (tuned on the demo's dev set: RESULTS.md)
punc_config=conf/punc.yaml # stage 9 (opt-in: --stop_stage 9): CT-Transformer punctuation model on People's Daily text, data/{dev,test} transcripts held out
punc_dir=exp/punc          # stage 9 output: a FunASR punctuation model dir (funasr_lite.Punctuator.from_model_dir; its model.pt is the engine's model.avg1.pt)
punc_args=                 # extra punctuation trainer arguments, e.g. "++train_conf.max_epoch=3"
calibrate_timestamps=false # stage 7: measure the fire delay on dev (greedy), write it into the exp's config.yaml, decode the other sets again (decode_<set>_greedy_calibrated; docs/timestamps.md)
onnx_export=true           # stage 8: also export the model dir to ONNX (model.onnx, int8 model_quant.onnx, tokens.json, sherpa tokens.txt; Paraformer and BiCifParaformer; ParaformerStreaming: + decoder.onnx; docs/deploy.md)
hotword_config=conf/demo_seaco.yaml  # stage 11 (opt-in): the SeACo hotword branch, trained on a frozen BiCif model
hotword_base=exp/demo_bicif  # stage 11: the BiCif exp (stage 4 with conf/demo_bicif.yaml) it starts from
hotword_lists="0 200 1000 4000"  # stage 11: decode the hotword test set with each list size (0: no hotwords)
hotword_score=0            # stage 11: > 0 also decodes the set with beam search + CTC boosting the hotwords by this much a token, with the model of $boost_exp (any model; no training; docs/hotwords.md)
hotword_topk=0             # stage 11: the boost searches a hotword's next token only among the decoder's top k there (0: wherever)
boost_exp=exp/demo         # stage 11: the exp whose model.avg$num_avg.pt the boost decodes with (hotword_config=none: the boost alone, no SeACo training)
longform_durations="600 3600"  # stage 10 (opt-in: --stop_stage 10): long recordings (s) built from data/test, decoded with VAD (+ stage 9's punctuation when present), scored (docs/longform.md)
# ---- end of options ----
help_message="Usage: bash run.sh [--name value ...]
AISHELL-1 Paraformer recipe, stages -1..8, opt-in 9..11 (README.md: what each stage makes). On a terminal each
stage shows its jobs (k/N done, elapsed, ETA) and a training job its epoch, step, ETA and last
validation CER; logs go to the files named by each stage."
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
  # The fbank options are the training config's frontend_conf (fine-tuning a model dir: pass its
  # config.yaml as --train_config); make_fbank.sh records them in data/$x/fbank.json, which
  # training and decoding check against the model's frontend_conf.
  fbank_options=$(python -m funasr_lite.bin.compute_fbank --config "$train_config" --print_options)
  for x in $train_set dev test; do
    params="resample=$resample fbank=$fbank_options"
    if stage_done "data/$x/.fbank.done" "$params" && [ -s "data/$x/feats.scp" ]; then log "data/$x: features exist"; continue; fi
    utils/make_fbank.sh --nj "$nj" --cmd "$train_cmd" --resample "$resample" --fbank-config "$train_config" \
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

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  extra=$lm_extra_text
  [ "$extra" = auto ] && extra=$corpus_root/data_aishell/transcript/lm_extra_text.txt
  [ "$lm_extra_text" = auto ] && [ ! -f "$extra" ] && extra=none
  mkdir -p "$lm_dir"
  lm_text=data/$train_set/text
  if [ "$extra" != none ]; then
    # Train text + the extra sentences (keyed lmextra-N); none of them is a dev/test sentence
    # (the corpus generator leaves out every text run that contains one).
    lm_text=$lm_dir/text
    { cat "data/$train_set/text"; awk '{printf "lmextra-%07d %s\n", NR, $0}' "$extra"; } > "$lm_text"
  fi
  log "stage 3: Transformer LM on $lm_text ($(wc -l < "$lm_text") sentences) -> $lm_dir (log: $lm_dir/log/train_lm.log)"
  # shellcheck disable=SC2086
  $train_cmd "$lm_dir/log/train_lm.log" python -m funasr_lite.bin.train_lm --config "$lm_config" \
    --text "$lm_text" --valid_text data/dev/text --token_list "$lang_dir/tokens.txt" \
    --output_dir "$lm_dir" $lm_args
fi

[ -z "$exp_tag" ] && exp_tag=$(basename "${train_config%.*}")
exp_dir=exp/$exp_tag
train_launcher=(python -m funasr_lite.bin.train)
[ "$ngpu" -gt 1 ] && train_launcher=(torchrun --standalone --nproc_per_node "$ngpu" -m funasr_lite.bin.train)

# plot_curves <exp-dir>: per-epoch loss/CER/acc curves -> <exp-dir>/curves.png (a missing picture
# is reported, not fatal). Per step: tensorboard --logdir exp
plot_curves() { python "local/plot_curves.py" "$1" || log "warning: no curves for $1"; }

# train_paraformer <config> <output-dir> [trainer args...]: one training job on the train set.
train_paraformer() {
  local config=$1 out=$2
  shift 2
  mkdir -p "$out"
  $train_cmd "$out/log/train.log" "${train_launcher[@]}" --config "$config" \
    --train_data "data/$train_set" --valid_data data/dev --token_list "$lang_dir/tokens.txt" \
    --cmvn_file "data/$train_set/am.mvn" --output_dir "$out" "$@"
}

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  log "stage 4: train $train_config -> $exp_dir (log: $exp_dir/train.log)"
  # shellcheck disable=SC2086
  train_paraformer "$train_config" "$exp_dir" \
    ++train_conf.avg_nbest_model="$num_avg" $train_args   # the trainer writes model.avg$num_avg.pt
  plot_curves "$exp_dir"
fi

model_name=$(python -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1])).get('model', 'paraformer'))" "$train_config")
streaming_model=false
[[ "$model_name" =~ ^([Pp]araformer[Ss]treaming|paraformer_streaming)$ ]] && streaming_model=true
# A streaming model decodes greedily, step by step (beam search is refused): its default mode is streaming.
$streaming_model && [ "$decode_modes" = "greedy beam_lm" ] && decode_modes=streaming
if [ $stage -le 5 ] && [ $stop_stage -ge 5 ] && [[ "$model_name" =~ ^[Cc]onformer$ ]]; then
  log "stage 5: skipped: MWER fine-tuning is for Paraformer; $train_config is an attention encoder-decoder ($model_name)"
elif [ $stage -le 5 ] && [ $stop_stage -ge 5 ] && $streaming_model; then
  log "stage 5: skipped: MWER fine-tuning is for offline Paraformer; $train_config streams ($model_name)"
elif [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  log "stage 5: MWER fine-tuning from $exp_dir/model.avg$num_avg.pt -> ${exp_dir}_mwer"
  # shellcheck disable=SC2086
  train_paraformer "$exp_dir/config.yaml" "${exp_dir}_mwer" --init_param "$exp_dir/model.avg$num_avg.pt" \
    ++train_conf.max_epoch="$mwer_epochs" ++train_conf.avg_nbest_model=1 $mwer_args
  plot_curves "${exp_dir}_mwer"
fi

[ -z "$decode_exp" ] && decode_exp=$exp_dir
if [ -z "$decode_checkpoint" ]; then
  decode_checkpoint=model.avg$num_avg.pt
  case "$decode_exp" in *_mwer) decode_checkpoint=model.avg1.pt ;; esac
fi
decode_args() {  # decoding options of one mode
  case "$1" in
    greedy)  echo "--decode_mode greedy" ;;
    greedy_int8) echo "--decode_mode greedy --quantized" ;;
    beam)    echo "--decode_mode beam --beam_size $beam_size --ctc_weight $ctc_weight" ;;
    beam_lm) echo "--decode_mode beam --beam_size $beam_size --ctc_weight $ctc_weight --lm_dir $lm_dir --lm_weight $lm_weight" ;;
    ctc_greedy) echo "--decode_mode ctc_greedy" ;;
    streaming) echo "--streaming --chunk_size $stream_chunk_size --piece_ms $stream_piece_ms" ;;
    *) log "unknown decode mode $1 (greedy|greedy_int8|beam|beam_lm|ctc_greedy|streaming)"; return 1 ;;
  esac
}

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  for x in $decode_sets; do
    for mode in $decode_modes; do
      dir=$decode_exp/decode_${x}_$mode
      log "stage 6: decode data/$x ($mode, nj=$nj) with $decode_exp/$decode_checkpoint -> $dir/1best_recog"
      args=$(decode_args "$mode")
      # Kaldi-style jobs: each decodes its part $dir/split$nj/JOB (a data dir) into
      # $dir/split$nj/JOB/1best_recog; the merge checks every part against its keys.
      utils/split_data.sh "data/$x" "$nj" "$dir/split$nj"
      # A job exits 3 when it finished but some utterances could not be decoded (listed in its
      # 1best_recog/failed); the merge is the judge: it refuses a job that did not finish, and
      # exits 3 (failed utterances listed in $dir/1best_recog/failed, scored as deletions) otherwise.
      # shellcheck disable=SC2086
      $decode_cmd JOB=1:"$nj" "$dir/log/decode.JOB.log" python -m funasr_lite.bin.infer \
        --exp_dir "$decode_exp" --checkpoint "$decode_checkpoint" --data_dir "$dir/split$nj/JOB" \
        --output_dir "$dir/split$nj/JOB" --num_threads 1 $args || true
      rc=0
      python -m funasr_lite.bin.infer --merge "$dir/split$nj" --output_dir "$dir" || rc=$?
      if [ $rc -eq 3 ]; then
        log "WARNING: $(wc -l < "$dir/1best_recog/failed") utterance(s) of data/$x not decoded, see $dir/1best_recog/failed"
      elif [ $rc -ne 0 ]; then
        exit $rc
      fi
    done
  done
fi

if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  for x in $decode_sets; do
    for mode in $decode_modes; do
      dir=$decode_exp/decode_${x}_$mode
      log "stage 7: score $dir"
      local/score.sh "data/$x" "$dir"
    done
  done
  if $calibrate_timestamps; then
    log "stage 7: fire delay from $decode_exp/decode_dev_greedy -> $decode_exp/config.yaml (timestamp_conf)"
    python -m funasr_lite.bin.calibrate_timestamps --data_dir data/dev --decode_dir "$decode_exp/decode_dev_greedy" \
      --model_dir "$decode_exp" --checkpoint "$decode_checkpoint"
    for x in $decode_sets; do
      [ "$x" = dev ] && continue
      dir=$decode_exp/decode_${x}_greedy_calibrated
      mkdir -p "$dir/log"
      $decode_cmd "$dir/log/decode.log" python -m funasr_lite.bin.infer --exp_dir "$decode_exp" \
        --checkpoint "$decode_checkpoint" --data_dir "data/$x" --output_dir "$dir" --decode_mode greedy
      local/score.sh "data/$x" "$dir"
    done
  fi
  grep -H . "$decode_exp"/decode_*/cer.txt "$decode_exp"/decode_*/timestamp.txt 2>/dev/null || true
fi

if [ $stage -le 8 ] && [ $stop_stage -ge 8 ]; then
  log "stage 8: model dir $decode_exp/model_dir (config.yaml, model.pt, am.mvn, tokens.txt)"
  python -m funasr_lite.bin.export_model_dir --exp_dir "$decode_exp" --checkpoint "$decode_checkpoint" \
    --out_dir "$decode_exp/model_dir"
  if $onnx_export; then
    model_class=$(python -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1])).get('model', ''))" "$decode_exp/model_dir/config.yaml")
    if [ "$model_class" = Paraformer ] || [ "$model_class" = BiCifParaformer ]; then
      log "stage 8: ONNX export -> $decode_exp/model_dir/{model.onnx,model_quant.onnx,tokens.json} (funasr-onnx, sherpa-onnx, infer --backend onnx)"
      python -m funasr_lite.bin.export --model_dir "$decode_exp/model_dir" --quantize
    elif [ "$model_class" = ParaformerStreaming ]; then
      log "stage 8: online ONNX export -> $decode_exp/model_dir/{model.onnx,decoder.onnx,*_quant.onnx,tokens.txt} (funasr-onnx, sherpa-onnx; docs/streaming.md)"
      python -m funasr_lite.bin.export --model_dir "$decode_exp/model_dir" --quantize
    else
      log "stage 8: no ONNX export for model: $model_class (the export covers Paraformer)"
    fi
  fi
fi

if [ $stage -le 9 ] && [ $stop_stage -ge 9 ]; then
  log "stage 9: punctuation model $punc_config -> $punc_dir (log: $punc_dir/log/train_punc.log)"
  mkdir -p "$punc_dir/log"
  # shellcheck disable=SC2086
  $train_cmd "$punc_dir/log/train_punc.log" python -m funasr_lite.bin.train_punc --config "$punc_config" \
    --exclude_text data/dev/text --exclude_text data/test/text --output_dir "$punc_dir" $punc_args
  python "local/score_punc.py" --model_dir "$punc_dir" --text "$punc_dir/data/test.txt" \
    --out "$punc_dir/score.json" | tee "$punc_dir/score.txt"
fi

if [ $stage -le 10 ] && [ $stop_stage -ge 10 ]; then
  log "stage 10: long recordings (${longform_durations// /, } s) from data/test -> data/longform, decoded and scored"
  python "local/make_longform_set.py" --data_dir data/test --out_dir data/longform \
    --durations "${longform_durations// /,}"
  punc_opt=(); [ -f "$punc_dir/model.pt" ] && punc_opt=(--punc_model_dir "$punc_dir")
  vad_dir=$(python -c "from funasr_lite.models.vad.model import released_vad_model_dir as d; print(d())")
  for seconds in $longform_durations; do
    dir=$decode_exp/decode_long${seconds}s
    mkdir -p "$dir/log"
    $decode_cmd "$dir/log/decode.log" python -m funasr_lite.bin.infer --model_dir "$decode_exp/model_dir" \
      --vad_model_dir "$vad_dir" "${punc_opt[@]}" --wav_scp "data/longform/long${seconds}s/wav.scp" --output_dir "$dir"
    python "local/score_longform.py" --data_dir "data/longform/long${seconds}s" --decode_dir "$dir" \
      | tee "$dir/score.txt"
  done
fi

if [ $stage -le 11 ] && [ $stop_stage -ge 11 ]; then
  # Hotwords (docs/hotwords.md): a test set of sentences rich in names no train text says, said by the
  # test voices (data/test_hotword), the SeACo branch trained on the frozen BiCif model, decoded with
  # lists of each size (the set's own hotwords first, then distractors), scored for hotword recall.
  hw_exp=exp/$(basename "$hotword_config" .yaml)
  [ "$hotword_config" = none ] && fbank_config=$train_config || fbank_config=$hotword_config
  log "stage 11: hotword test set -> data/test_hotword; $hotword_config on $hotword_base -> $hw_exp; lists $hotword_lists; boost $hotword_score with $boost_exp"
  if [ ! -s data/test_hotword/text ]; then
    python -m funasr_lite.bin.make_hotword_set --corpus "$corpus_root" --train_text "data/$train_set/text" \
      --out data/test_hotword --nj "$nj" --seed "$seed" --size "$corpus_size"
  fi
  fbank_options=$(python -m funasr_lite.bin.compute_fbank --config "$fbank_config" --print_options)
  params="resample=$resample fbank=$fbank_options"
  if ! stage_done data/test_hotword/.fbank.done "$params"; then
    utils/make_fbank.sh --nj "$nj" --cmd "$train_cmd" --resample "$resample" --fbank-config "$fbank_config" \
      data/test_hotword exp/make_fbank/test_hotword fbank
    echo "$params" > data/test_hotword/.fbank.done
  fi
  score_hotword_dir() {
    python -m funasr_lite.bin.compute_cer --ref data/test_hotword/text --hyp "$1/1best_recog/text" \
      --out_dir "$1" --ref_timestamps data/test_hotword/char_timestamps \
      --hyp_timestamps "$1/1best_recog/time_stamp" --hotword_list data/test_hotword/hotwords_200.txt
  }
  if [ "$hotword_config" != none ]; then
    [ -f "$hotword_base/model.avg$num_avg.pt" ] || { log "no $hotword_base/model.avg$num_avg.pt: run stage 4 with conf/demo_bicif.yaml first"; exit 1; }
    train_paraformer "$hotword_config" "$hw_exp" --init_param "$hotword_base/model.avg$num_avg.pt"
    for n in $hotword_lists; do
      dir=$hw_exp/decode_test_hotword_hw$n
      hw_opt=(); [ "$n" != 0 ] && hw_opt=(--hotword "data/test_hotword/hotwords_$n.txt")
      mkdir -p "$dir/log"
      $decode_cmd "$dir/log/decode.log" python -m funasr_lite.bin.infer --exp_dir "$hw_exp" \
        --checkpoint model.avg1.pt --data_dir data/test_hotword --output_dir "$dir" "${hw_opt[@]}"
      score_hotword_dir "$dir"
    done
  fi
  if [ "$hotword_score" != 0 ]; then
    [ -f "$boost_exp/model.avg$num_avg.pt" ] || { log "no $boost_exp/model.avg$num_avg.pt: run stage 4 first"; exit 1; }
    for n in $hotword_lists; do
      dir=$boost_exp/decode_test_hotword_boost${hotword_score}_top${hotword_topk}_hw$n
      hw_opt=(); [ "$n" != 0 ] && hw_opt=(--hotword "data/test_hotword/hotwords_$n.txt" --hotword_score "$hotword_score" --hotword_topk "$hotword_topk")
      mkdir -p "$dir/log"
      log "stage 11: beam + CTC, hotword boost $hotword_score, list $n -> $dir"
      $decode_cmd "$dir/log/decode.log" python -m funasr_lite.bin.infer --exp_dir "$boost_exp" \
        --checkpoint "model.avg$num_avg.pt" --data_dir data/test_hotword --output_dir "$dir" \
        --decode_mode beam --beam_size "$beam_size" --ctc_weight "$ctc_weight" "${hw_opt[@]}"
      score_hotword_dir "$dir"
    done
  fi
fi

log "done (stages $stage..$stop_stage)"
