"""Scoring: CER from one alignment (``cer``), timestamps against ground truth (``timestamps``), a whole
decode dir (``decode_dir``), punctuation (``punctuation``), speaker verification: EER and minDCF of a trial
list (``speaker``)."""
