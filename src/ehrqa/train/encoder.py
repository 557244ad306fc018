"""Teaching the sentence encoder relevance: contrastive fine-tuning of MiniLM's top layers on
(query, evidence sentence) pairs from annotated sources.

A training example is a triple (query, positive, negative): an ST2 clinician question with one of
its essential note sentences, or an ST4 answer sentence (or Check-COVID claim) with one of the
sentences it cites; the negative is a sentence of the same note that is not evidence (a hard
negative), or None (:func:`ehrqa.train.aligner.evidence_triples` builds them). The loss is the
usual in-batch contrastive one: each query must rank its own positive above every other positive
and negative of the batch (scaled cosine, cross-entropy); a candidate that is also gold for that
query (two essential sentences of one question) is masked.

Only the top ``trained_layers`` transformer layers change, so the lower layers' output of a text
never does: :class:`LowerStates` computes it once per distinct text, and every model trained on
the same base (each held-out source of the benchmark, each epoch) costs only the top layers. The
trained tensors ship in fp16 (:func:`save_encoder`) and load over the shipped MiniLM
(:func:`ehrqa.retrieval.dense.encode` with ``tuned``).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ehrqa.progress import progress
from ehrqa.retrieval.dense import TUNED_NAME, load_sentence_encoder
from ehrqa.train.loop import fit_parameters, top_layer_prefixes

Triple = tuple[str, str, "str | None"]  # (query, evidence sentence, non-evidence sentence or None)


@dataclass(frozen=True)
class EncoderSettings:
    trained_layers: int = 2  # top transformer layers trained; the rest stays the shipped MiniLM
    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 5e-5
    hard_negatives: bool = True  # a non-evidence sentence of the same note beside each positive
    max_tokens: int = 64  # training sees each text's first tokens (the lower states keep them all)
    scale: float = 20.0  # cosine -> logit
    seed: int = 13


# ---------------------------------------------------------------------------------------------
# The frozen lower layers, once per text


class LowerStates:
    """Per distinct text, MiniLM's hidden states below its top ``trained_layers`` layers."""

    def __init__(self, trained_layers: int = 2, model: str | None = None) -> None:
        encoder = load_sentence_encoder(model)
        self.tokenizer, self.max_length = encoder[0].tokenizer, encoder.max_seq_length
        self.base = encoder[0].auto_model  # never trained: models copy it
        self.split = self.base.config.num_hidden_layers - trained_layers
        self.trained_layers = trained_layers
        self.states: dict[str, object] = {}

    def add(self, texts: Sequence[str], batch_size: int = 32) -> None:
        import torch

        todo = sorted(set(texts) - self.states.keys(), key=len)
        self.base.eval()
        with torch.no_grad():
            for start in progress(range(0, len(todo), batch_size), "encoder lower layers"):
                batch = todo[start : start + batch_size]
                encoded = self.tokenizer(
                    batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                )
                hidden = self.base(**encoded, output_hidden_states=True).hidden_states[self.split]
                for i, text in enumerate(batch):
                    self.states[text] = hidden[i, : int(encoded["attention_mask"][i].sum())].clone()

    def embed(self, network, texts: Sequence[str], max_tokens: int | None = None):
        """Unit-length sentence vectors of ``texts`` through ``network``'s top layers (mean pooling,
        as all-MiniLM-L6-v2's own pipeline), from each text's first ``max_tokens`` (None: all);
        gradients flow when the caller allows them."""
        import torch
        from transformers.masking_utils import create_bidirectional_mask

        states = [self.states[t][:max_tokens] for t in texts]
        hidden = torch.nn.utils.rnn.pad_sequence(states, batch_first=True)
        mask = torch.zeros(hidden.shape[:2])
        for i, state in enumerate(states):
            mask[i, : len(state)] = 1
        mask4d = create_bidirectional_mask(config=network.config, inputs_embeds=hidden, attention_mask=mask.long())
        for layer in network.encoder.layer[self.split :]:
            hidden = layer(hidden, mask4d)
        pooled = (hidden * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True)
        return torch.nn.functional.normalize(pooled, dim=-1)


# ---------------------------------------------------------------------------------------------
# The training loop


def train_encoder(triples: Sequence[Triple], states: LowerStates, settings: EncoderSettings = EncoderSettings()):
    """A copy of the base network with its top layers fitted to ``triples``; returns it and the
    trained tensors (fp16, what ships)."""
    import torch

    if states.trained_layers != settings.trained_layers:
        raise ValueError("the lower states were computed for another number of trained layers")
    triples = list(triples)
    if not settings.hard_negatives:
        triples = [(q, p, None) for q, p, _ in triples]
    states.add([t for q, p, n in triples for t in (q, p, n) if t is not None])
    torch.manual_seed(settings.seed)
    network = copy.deepcopy(states.base)
    prefixes = tuple(top_layer_prefixes(network.config.num_hidden_layers, settings.trained_layers))
    gold = {(q, p) for q, p, _ in triples}

    def loss_of(batch):
        candidates = [p for _, p, _ in batch] + [n for _, _, n in batch if n is not None]
        queries = [q for q, _, _ in batch]
        q_vectors = states.embed(network, queries, settings.max_tokens)
        logits = settings.scale * q_vectors @ states.embed(network, candidates, settings.max_tokens).T
        # a candidate that is gold for this query (other than its own positive) is no negative
        masked = [[i != j and (q, c) in gold for j, c in enumerate(candidates)] for i, q in enumerate(queries)]
        logits = logits.masked_fill(torch.tensor(masked), float("-inf"))
        return torch.nn.functional.cross_entropy(logits, torch.arange(len(batch)))

    fit_parameters(
        network,
        lambda name: name.startswith(prefixes),
        triples,
        loss_of,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        seed=settings.seed,
        label="encoder batches",
    )
    tensors = {n: p.detach().half().contiguous() for n, p in network.named_parameters() if n.startswith(prefixes)}
    # what ships is fp16: the network that scores uses the same rounded weights
    network.load_state_dict({n: t.float() for n, t in tensors.items()}, strict=False)
    return network, tensors


class TunedVectors:
    """The :class:`~ehrqa.retrieval.features.Encoder` interface over a trained network and the
    shared lower states (the benchmark's way to encode with many trained models cheaply)."""

    def __init__(self, states: LowerStates, network, batch_size: int = 64) -> None:
        self.states, self.network, self.batch_size = states, network, batch_size
        self.dtype = "fp32"
        self._memory: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str], role: str = "document") -> dict[str, np.ndarray]:
        """Text -> vector (MiniLM takes no prefix, so ``role`` changes nothing)."""
        import torch

        todo = sorted(set(texts) - self._memory.keys(), key=len)
        self.states.add(todo)
        with torch.no_grad():
            for start in range(0, len(todo), self.batch_size):
                batch = todo[start : start + self.batch_size]
                self._memory.update(zip(batch, self.states.embed(self.network, batch).numpy(), strict=True))
        return {t: self._memory[t] for t in texts}


def save_encoder(tensors: dict, settings: EncoderSettings, directory: str | Path, record: dict) -> dict:
    """Store the trained tensors (fp16 safetensors) in ``directory``; return the ``dense`` section."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / TUNED_NAME))
    return {
        "model": "all-MiniLM-L6-v2",
        "tuned": TUNED_NAME,
        "training": {**asdict(settings), **record},
    }


class CrossFitted:
    """Encoders taught on subsets of the sources, each trained once.

    A source the encoder learned from looks more separable than new notes will (its own pairs were
    pulled together), so a combiner fitted on such features trusts the dense ones too much. Hence
    cross-fitting: the features of each training source come from the encoder taught without it
    (:meth:`per_source`), and new cases are encoded by the one taught on all (:meth:`vectors`).
    """

    def __init__(
        self, triples: dict[str, list[Triple]], settings: EncoderSettings = EncoderSettings(), states=None
    ) -> None:
        self.triples, self.settings = triples, settings
        self.states = states or LowerStates(settings.trained_layers)
        self._vectors: dict[frozenset, TunedVectors] = {}
        self.tensors: dict[frozenset, dict] = {}
        self.seconds: dict[frozenset, float] = {}

    def vectors(self, names) -> TunedVectors:
        """The encoder taught on the triples of ``names`` (none: the base MiniLM)."""
        key = frozenset(n for n in names if self.triples.get(n))
        if key not in self._vectors:
            if key:
                started = time.perf_counter()
                network, self.tensors[key] = train_encoder(
                    [t for n in sorted(key) for t in self.triples[n]], self.states, self.settings
                )
                self.seconds[key] = round(time.perf_counter() - started, 1)
            else:
                network = self.states.base
            self._vectors[key] = TunedVectors(self.states, network)
        return self._vectors[key]

    def per_source(self, names) -> dict[str, TunedVectors]:
        """Each of ``names`` -> the encoder taught on the others (its cross-fitted features)."""
        return {n: self.vectors([m for m in names if m != n]) for n in names}
