"""Fitting the cross-encoder: a MiniLM with a one-logit head trained on (query, note sentence,
label) pairs, and its stored tensors.

Only the classification head, the pooler and the top ``trained_layers`` encoder layers are
trained (the rest stays the shipped MiniLM), so a model directory stores just those tensors.
The loop is plain PyTorch: shuffle, batch, binary cross-entropy, AdamW. An optional weak first
stage uses MedQuAD pairs (:func:`medquad_pairs`). Which pairs to train on, and the whole aligner
recipe around this, are :mod:`ehrqa.train.aligner`'s job.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from ehrqa.progress import progress
from ehrqa.retrieval.cross_encoder import WEIGHTS_NAME, new_cross_encoder

Pair = tuple[str, str, float]


@dataclass
class CrossEncoderSettings:
    base_model: str = "all-MiniLM-L6-v2"
    trained_layers: int = 2  # top encoder layers trained (0 = head and pooler only)
    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 5e-5
    max_length: int = 128
    negatives_per_positive: float = 2.0  # negatives subsampled to this ratio (0 = keep all)
    weak_pairs: int = 0  # MedQuAD first-stage pairs (0 = no weak stage)
    weak_epochs: int = 1
    seed: int = 13

    @classmethod
    def from_dict(cls, d: dict | None) -> CrossEncoderSettings:
        d = dict(d or {})
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"cross-encoder training: unknown settings {', '.join(unknown)}")
        return cls(**d)


def medquad_pairs(n: int, seed: int = 13) -> list[Pair]:
    """Weak pairs from MedQuAD: a question with a sentence of its own answer (1), with a sentence of
    another answer on the same topic (0, hard), and with one from another topic (0)."""
    from ehrqa.data.corpora import read_medquad
    from ehrqa.text import split_sentences

    rng = random.Random(seed)
    records = [r for r in read_medquad() if r.get("answer") and r.get("question")]
    rng.shuffle(records)
    records = records[: max(1, n // 3 * 2)]
    by_focus: dict[str, list[dict]] = {}
    for r in records:
        by_focus.setdefault(r.get("focus") or "", []).append(r)
    split = {id(r): [s for s in split_sentences(r["answer"]) if len(s.split()) >= 4][:8] for r in records}
    pairs: list[Pair] = []
    for r in records:
        own = split[id(r)]
        if not own:
            continue
        pairs.append((r["question"], rng.choice(own), 1.0))
        same_topic = [o for o in by_focus[r.get("focus") or ""] if o is not r and split[id(o)]]
        other = same_topic[rng.randrange(len(same_topic))] if same_topic else records[rng.randrange(len(records))]
        if other is not r and split[id(other)]:
            pairs.append((r["question"], rng.choice(split[id(other)]), 0.0))
        if len(pairs) >= n:
            break
    return pairs[:n]


def balance(pairs: Sequence[Pair], negatives_per_positive: float, seed: int) -> list[Pair]:
    """All positives and at most ``negatives_per_positive`` times as many negatives (seeded sample)."""
    positives = [p for p in pairs if p[2] > 0]
    negatives = [p for p in pairs if p[2] <= 0]
    limit = int(round(negatives_per_positive * len(positives)))
    if negatives_per_positive > 0 and len(negatives) > limit:
        negatives = random.Random(seed).sample(negatives, limit)
    return positives + negatives


# ---------------------------------------------------------------------------------------------
# The training loop


def trainable_names(model, trained_layers: int) -> list[str]:
    """Parameter names trained: the top ``trained_layers`` encoder layers, the pooler and the head."""
    from ehrqa.train.loop import top_layer_prefixes

    prefixes = [*top_layer_prefixes(model.config.num_hidden_layers, trained_layers), "pooler.", "classifier."]
    return [name for name, _ in model.named_parameters() if any(p in name for p in prefixes)]


class FrozenFeatures:
    """Hidden states after the frozen lower layers, computed once per distinct (query, sentence).

    Only the top ``trained_layers`` layers, the pooler and the head change during training, so
    the lower layers' output for a pair never changes: caching it makes every epoch, every
    cross-validation fold and every held-out scoring pass cost only the top layers.
    """

    def __init__(self, model, settings: CrossEncoderSettings) -> None:
        self.network, self.tokenizer = model.model, model.tokenizer
        self.split = self.network.config.num_hidden_layers - settings.trained_layers
        self.max_length = settings.max_length
        self.states: dict[tuple[str, str], object] = {}

    def add(self, pairs: Sequence[tuple[str, str]], batch_size: int = 64) -> None:
        import torch

        todo = sorted({(q, s) for q, s in pairs} - self.states.keys(), key=lambda p: len(p[0]) + len(p[1]))
        self.network.eval()
        with torch.no_grad():
            for start in progress(range(0, len(todo), batch_size), "cross-encoder features"):
                batch = todo[start : start + batch_size]
                encoded = self.tokenizer(
                    [q for q, _ in batch],
                    [s for _, s in batch],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = self.network.bert(**encoded, output_hidden_states=True).hidden_states[self.split]
                for i, key in enumerate(batch):
                    self.states[key] = hidden[i, : int(encoded["attention_mask"][i].sum())].clone()

    def logits(self, network, keys: Sequence[tuple[str, str]]):
        """The head's logits for ``keys`` from their cached states through ``network``'s top layers."""
        import torch
        from transformers.masking_utils import create_bidirectional_mask

        states = [self.states[k] for k in keys]
        hidden = torch.nn.utils.rnn.pad_sequence(states, batch_first=True)
        mask = torch.zeros(hidden.shape[:2], dtype=torch.long)
        for i, state in enumerate(states):
            mask[i, : len(state)] = 1
        mask4d = create_bidirectional_mask(config=network.config, inputs_embeds=hidden, attention_mask=mask)
        for layer in network.bert.encoder.layer[self.split :]:
            hidden = layer(hidden, mask4d)
        pooled = network.dropout(network.bert.pooler(hidden))
        return network.classifier(pooled).view(-1)

    def score(self, network, pairs: Sequence[tuple[str, str]], batch_size: int = 128) -> np.ndarray:
        import torch

        self.add(pairs)
        network.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(pairs), batch_size):
                out.append(self.logits(network, [tuple(p) for p in pairs[start : start + batch_size]]).numpy())
        return np.concatenate(out).astype(float) if out else np.zeros(0)


def _fit(model, features: FrozenFeatures, pairs: Sequence[Pair], settings: CrossEncoderSettings, epochs: int) -> None:
    import torch

    from ehrqa.train.loop import fit_parameters

    names = set(trainable_names(model.model, settings.trained_layers))
    features.add([(q, s) for q, s, _ in pairs])
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def loss_of(batch):
        logits = features.logits(model.model, [(q, s) for q, s, _ in batch])
        return loss_fn(logits, torch.tensor([label for _, _, label in batch], dtype=torch.float32))

    fit_parameters(
        model.model,
        names.__contains__,
        pairs,
        loss_of,
        epochs=epochs,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        seed=settings.seed,
        label="cross-encoder batches",
    )


def train_cross_encoder(pairs: Sequence[Pair], settings: CrossEncoderSettings, features: FrozenFeatures | None = None):
    """A CrossEncoder fine-tuned on ``pairs`` (after an optional weak MedQuAD stage).

    ``features`` may be shared between models trained with the same settings (e.g. across folds).
    """
    import torch

    torch.manual_seed(settings.seed)
    model = new_cross_encoder(settings.base_model, settings.max_length)
    features = features or FrozenFeatures(model, settings)
    if settings.weak_pairs > 0:
        _fit(model, features, medquad_pairs(settings.weak_pairs, settings.seed), settings, settings.weak_epochs)
    _fit(model, features, balance(pairs, settings.negatives_per_positive, settings.seed), settings, settings.epochs)
    return model


def save_cross_encoder(model, settings: CrossEncoderSettings, directory: Path) -> dict:
    """Store the trained tensors in fp16 and return the ``cross_encoder`` config section."""
    from safetensors.torch import save_file

    names = set(trainable_names(model.model, settings.trained_layers))
    tensors = {n: p.detach().to("cpu").half().contiguous() for n, p in model.model.named_parameters() if n in names}
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / WEIGHTS_NAME))
    return {
        "base_model": settings.base_model,
        "weights": WEIGHTS_NAME,
        "max_length": settings.max_length,
        "trained_layers": settings.trained_layers,
    }
