"""Paraformer family: model, CIF predictors, glancing sampler, SAN-M decoder."""
