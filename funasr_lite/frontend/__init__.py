"""Feature frontend: audio reading, Kaldi fbank, LFR stacking, CMVN (am.mvn), speed perturbation.

SPEC §1. Import the pieces from their modules, e.g.
``from funasr_lite.frontend.fbank import compute_fbank``.
"""
