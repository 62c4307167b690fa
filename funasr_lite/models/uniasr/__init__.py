"""UniASR (FunASR's 2-pass model of the seed card): the SCAMA decoder first (decoder.py)."""
