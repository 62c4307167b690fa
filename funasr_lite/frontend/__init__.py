"""Feature frontend: audio reading, Kaldi fbank, LFR stacking, CMVN (am.mvn), speed perturbation.

docs/spec.md §1. ``wav_frontend.WavFrontend`` (frontend_conf + am.mvn) is the one path from audio to model
input that stage 1, training, decoding and the API share. Import the pieces from their modules,
e.g. ``from funasr_lite.frontend.wav_frontend import WavFrontend``.
"""
