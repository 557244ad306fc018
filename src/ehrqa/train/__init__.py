"""Training: the two-stage QLoRA answer generator and chat-format training data."""
