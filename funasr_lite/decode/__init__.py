"""Search and timestamps: greedy / beam search with CTC prefix scores and LM fusion, AED search, CTC
alignment, CIF timestamps. Model-dir loading and the inference pipeline are in :mod:`funasr_lite.inference`."""
