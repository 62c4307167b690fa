"""Decoding: search, CIF timestamps, 1best_recog writers and CER scoring."""
