"""Chat language models: one backend interface, local transformers and OpenAI-compatible servers."""
