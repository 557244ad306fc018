"""Training: the evidence aligner (cross-encoder, ensembles, learned relevance) and the QLoRA generator."""
