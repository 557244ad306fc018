"""The training loop the aligner's two MiniLM models share (the cross-encoder and the taught
bi-encoder): only the named parameters learn; AdamW, a linear warm-up over the first tenth of the
steps then linear decay, the gradient norm clipped at 1, the examples shuffled each epoch."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from ehrqa.progress import progress


def top_layer_prefixes(n_layers: int, trained_layers: int) -> list[str]:
    """Parameter-name parts of a BERT-style model's top ``trained_layers`` transformer layers."""
    return [f"encoder.layer.{i}." for i in range(n_layers - trained_layers, n_layers)]


def fit_parameters(
    network,
    trained: Callable[[str], bool],
    examples: Sequence,
    loss_of: Callable[[list], object],
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    label: str,
) -> None:
    """Fit the parameters of ``network`` whose names ``trained`` accepts (the rest are frozen) to
    ``loss_of(batch)``; leaves the network in eval mode."""
    import torch

    params = []
    for name, p in network.named_parameters():
        p.requires_grad_(trained(name))
        if trained(name):
            params.append(p)
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.01)
    steps = epochs * ((len(examples) + batch_size - 1) // batch_size)
    warmup = max(1, steps // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * max(0.0, 1 - step / max(1, steps))
    )
    rng = random.Random(seed)
    order = list(range(len(examples)))
    network.train()
    for _epoch in range(epochs):
        rng.shuffle(order)
        for start in progress(range(0, len(order), batch_size), label):
            loss = loss_of([examples[i] for i in order[start : start + batch_size]])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
    network.eval()
