"""data2vec (FunASR's self-supervised pretraining): the encoder (encoder.py, transformer.py), its
span masks (masking.py), the EMA teacher and targets (ema.py), the pretraining model (model.py)."""
