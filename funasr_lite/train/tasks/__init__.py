"""The training tasks of the engine (funasr_lite.train.engine): one module per model family.

asr   Paraformer / Conformer-AED ASR on Kaldi data dirs or tar shards; validation CER (run_training)
lm    token LM for shallow fusion on transcripts; validation perplexity (train_lm)
punc  CT-Transformer punctuation on punctuated text; validation F1, a FunASR model dir (train_punc)
pretrain  data2vec self-supervised pretraining on audio without transcripts; validation loss (run_pretraining)
speaker  FunASR's x-vector on a data dir's speakers, AAM-softmax; validation EER, a speaker model dir
      (train_speaker)

How to add one: funasr_lite.train.task.
"""
