"""Training the aligner: fine-tune the cross-encoder, then tune the ensemble by k-fold
cross-validation on the training cases only.

Cross-encoder training pairs are (query, note sentence, label):
- ST2: (clinician question, sentence, 1 if essential else 0), from relevance labels;
- ST4: (answer sentence, note sentence, 1 if cited else 0), from answer-sentence citations;
- optional weak first stage from MedQuAD: (question, sentence of its answer, 1) against
  sentences of other answers about the same or another topic (0).

Only the classification head, the pooler and the top ``trained_layers`` encoder layers
are trained (the rest stays the shipped MiniLM), so a model directory stores just those
tensors. The loop is plain PyTorch: shuffle, batch, binary cross-entropy, AdamW.

:func:`train_aligner` is the whole recipe: out-of-fold cross-encoder scores (a model per
fold, trained without that fold), the cheap scorers on every case, an exhaustive search of
weights / threshold / max links per subtask on those held-out scores, a final
cross-encoder on all cases, and the model directory.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from ehrqa.data.case import Case
from ehrqa.progress import progress
from ehrqa.retrieval import COMPONENTS, build_scorer
from ehrqa.retrieval.cross_encoder import CONFIG_NAME, WEIGHTS_NAME, new_cross_encoder
from ehrqa.retrieval.ensemble import (
    EnsembleConfig,
    ScoreTable,
    TuningGrid,
    cross_validate,
    make_folds,
    tune,
)
from ehrqa.retrieval.model import FORMAT, QUERY_MODES, AlignerModel, requests_for

log = logging.getLogger(__name__)

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


# The built-in recipe (``ehrqa train aligner`` without --recipe); recipes/*.yaml name others.
DEFAULT_RECIPE: dict = {
    "use": ["bm25", "tfidf", "dense", "cross_encoder"],
    "components": {
        "bm25": {"variant": "okapi", "k1": 1.5, "b": 0.75},
        "tfidf": {"ngram_max": 2, "sublinear_tf": True, "fit": "case"},
        "dense": {"model": "all-MiniLM-L6-v2"},
        "cross_encoder": {"batch_size": 64},
    },
    "cross_encoder_training": {},
    "subtasks": {"2": {"query": "clinician"}, "4": {"query": "answer", "rerank_top": 5}},
    "tuning": {"folds": 5, "weight_step": 0.1, "threshold_step": 0.02, "seed": 13},
}


def load_recipe(path: str | Path | None = None) -> dict:
    """The ``aligner:`` section of a YAML recipe, or a copy of :data:`DEFAULT_RECIPE`."""
    import copy

    if path is None:
        return copy.deepcopy(DEFAULT_RECIPE)
    import yaml

    document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    section = document.get("aligner")
    if not isinstance(section, dict):
        raise ValueError(f"{path}: no `aligner:` section")
    return section


# ---------------------------------------------------------------------------------------------
# Training pairs


def gold_indices(subtask: int, case: Case) -> list[set[int]]:
    """Per query of the subtask, the indices of the gold note sentences."""
    index = {s.id: j for j, s in enumerate(case.sentences)}
    if subtask == 2:
        return [{index[i] for i in case.essential_ids if i in index}]
    return [{index[c] for c in a.citations or () if c in index} for a in case.answer_sentences or ()]


def has_gold(subtask: int, case: Case) -> bool:
    if not case.sentences:
        return False
    if subtask == 2:
        return case.relevance is not None
    return bool(case.answer_sentences) and all(a.citations is not None for a in case.answer_sentences)


def training_pairs(cases: Sequence[Case], subtask: int, query_mode: str) -> list[Pair]:
    pairs: list[Pair] = []
    cases = [c for c in cases if has_gold(subtask, c)]
    for case, (queries, sentences) in zip(cases, requests_for(subtask, cases, query_mode), strict=True):
        for query, gold in zip(queries, gold_indices(subtask, case), strict=True):
            pairs.extend((query, s, float(j in gold)) for j, s in enumerate(sentences))
    return pairs


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
    n_layers = model.config.num_hidden_layers
    prefixes = [f"encoder.layer.{i}." for i in range(n_layers - trained_layers, n_layers)] + ["pooler.", "classifier."]
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

    network = model.model
    names = set(trainable_names(network, settings.trained_layers))
    params = []
    for name, p in network.named_parameters():
        p.requires_grad_(name in names)
        if name in names:
            params.append(p)
    features.add([(q, s) for q, s, _ in pairs])
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.01)
    steps = epochs * ((len(pairs) + settings.batch_size - 1) // settings.batch_size)
    warmup = max(1, steps // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * max(0.0, 1 - step / max(1, steps))
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    rng = random.Random(settings.seed)
    order = list(range(len(pairs)))
    network.train()
    for _epoch in range(epochs):
        rng.shuffle(order)
        for start in progress(range(0, len(order), settings.batch_size), "cross-encoder batches"):
            batch = [pairs[i] for i in order[start : start + settings.batch_size]]
            logits = features.logits(network, [(q, s) for q, s, _ in batch])
            loss = loss_fn(logits, torch.tensor([label for _, _, label in batch], dtype=torch.float32))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
    network.eval()


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


# ---------------------------------------------------------------------------------------------
# The whole recipe


def _subtask_settings(recipe: dict, subtask: int) -> dict:
    return dict((recipe.get("subtasks") or {}).get(str(subtask)) or {})


def _grid(recipe: dict, subtask: int) -> TuningGrid:
    tuning = recipe.get("tuning") or {}
    section = _subtask_settings(recipe, subtask)
    step = float(tuning.get("threshold_step", 0.02))
    default_k = (1, 2, 3, 4, 5, None) if subtask == 4 else (None, 2, 3, 5, 8, 12)
    return TuningGrid(
        weight_step=float(tuning.get("weight_step", 0.1)),
        thresholds=tuple(np.round(np.arange(0.0, 1.0 + 1e-9, step), 4)),
        max_links=tuple(section.get("max_links", default_k)),
        min_links=int(section.get("min_links", 1)),
    )


@dataclass
class HeldOutScores:
    """Every training case scored by every component; cross-encoder scores are out-of-fold."""

    use: list[str]
    components: dict[str, dict]
    settings: CrossEncoderSettings
    data: dict[int, list[Case]]  # subtask -> cases with gold for it
    modes: dict[int, str]  # subtask -> query mode
    folds: dict[str, int]  # case id -> fold
    raw: dict[int, dict[str, list[np.ndarray]]]  # subtask -> component -> per-case matrices
    gold: dict[int, list[list[set[int]]]]  # subtask -> per case, per query, gold indices
    fold_training_s: list[float]
    features: FrozenFeatures | None = None  # lower-layer cache, reused by the final training

    def table(self, subtask: int, config: EnsembleConfig) -> ScoreTable:
        return ScoreTable.build(self.raw[subtask], self.gold[subtask], config, [c.id for c in self.data[subtask]])


def held_out_scores(cases: Sequence[Case], recipe: dict, subtasks: Sequence[int] | None = None) -> HeldOutScores:
    """Score the training cases with every component the recipe uses; the cross-encoder of each
    fold is trained on the other folds only."""
    use = list(recipe.get("use") or ["bm25", "tfidf", "cross_encoder"])
    unknown = sorted(set(use) - set(COMPONENTS))
    if unknown:
        raise ValueError(f"aligner recipe: unknown components {', '.join(unknown)}")
    components = {name: dict((recipe.get("components") or {}).get(name) or {}) for name in use}
    settings = CrossEncoderSettings.from_dict(recipe.get("cross_encoder_training"))
    tuning = recipe.get("tuning") or {}
    wanted = list(subtasks) if subtasks else [2, 4]
    data = {t: [c for c in cases if has_gold(t, c)] for t in wanted}
    data = {t: cs for t, cs in data.items() if cs}
    if not data:
        raise ValueError("no training cases with gold for the requested subtasks (ST2 relevance or ST4 citations)")
    modes = {t: _subtask_settings(recipe, t).get("query", QUERY_MODES[t][0]) for t in data}
    all_ids = sorted({c.id for cs in data.values() for c in cs})
    folds = make_folds(all_ids, int(tuning.get("folds", 5)), int(tuning.get("seed", 13)))
    requests = {t: requests_for(t, cs, modes[t]) for t, cs in data.items()}
    gold = {t: [gold_indices(t, c) for c in cs] for t, cs in data.items()}

    raw: dict[int, dict[str, list[np.ndarray]]] = {t: {} for t in data}
    for t in data:
        for name in use:
            if name != "cross_encoder":
                raw[t][name] = build_scorer(name, components[name]).score_requests(requests[t])
    fold_seconds = []
    features = None
    if "cross_encoder" in use:
        for t in data:
            raw[t]["cross_encoder"] = [np.zeros((len(q), len(s))) for q, s in requests[t]]
        for fold in sorted(set(folds.values())):
            train_cases = [c for c in cases if c.id in folds and folds[c.id] != fold]
            pairs = [p for t in data for p in training_pairs(train_cases, t, modes[t])]
            log.info("fold %d: training the cross-encoder on %d pairs", fold, len(pairs))
            t0 = time.perf_counter()
            model = train_cross_encoder(pairs, settings, features)
            features = features or FrozenFeatures(model, settings)
            fold_seconds.append(time.perf_counter() - t0)
            for t, cs in data.items():
                for r, c in enumerate(cs):
                    if folds[c.id] == fold:
                        queries, sentences = requests[t][r]
                        keys = [(q, s) for q in queries for s in sentences]
                        values = features.score(model.model, keys)
                        raw[t]["cross_encoder"][r] = values.reshape(len(queries), len(sentences))
    return HeldOutScores(use, components, settings, data, modes, folds, raw, gold, fold_seconds, features)


def base_ensemble(recipe: dict, subtask: int, use: Sequence[str]) -> EnsembleConfig:
    """The untuned ensemble of a subtask: the recipe's normalisation, rerank depth and min links."""
    section = _subtask_settings(recipe, subtask)
    config = EnsembleConfig(
        weights={n: 1.0 for n in use},
        min_links=int(section.get("min_links", 1)),
        normalise=dict(section.get("normalise") or {}),
        rerank_top=section.get("rerank_top") if "cross_encoder" in use else None,
        rerank_by=tuple(section.get("rerank_by", ("bm25", "tfidf"))),
    )
    missing = [n for n in config.rerank_by if n not in use]
    if config.rerank_top and missing:
        raise ValueError(f"aligner recipe, subtask {subtask}: rerank_by names {', '.join(missing)}, not in `use`")
    return config


def train_aligner(
    cases: Sequence[Case],
    recipe: dict,
    out: str | Path,
    subtasks: Sequence[int] | None = None,
) -> AlignerModel:
    """Train and tune an aligner on ``cases`` (with gold) and write it to ``out``."""
    out = Path(out)
    started = time.perf_counter()
    scores = held_out_scores(cases, recipe, subtasks)
    record: dict = {
        "cases": {str(t): len(cs) for t, cs in scores.data.items()},
        "folds": len(set(scores.folds.values())),
    }
    ce_section = None
    if "cross_encoder" in scores.use:
        t0 = time.perf_counter()
        final_pairs = [p for t, cs in scores.data.items() for p in training_pairs(cs, t, scores.modes[t])]
        final = train_cross_encoder(final_pairs, scores.settings, scores.features)
        record["cross_encoder_training_s"] = round(time.perf_counter() - t0, 1)
        ce_section = save_cross_encoder(final, scores.settings, out)
        ce_section["training"] = asdict(scores.settings)

    sections = {}
    for t in scores.data:
        base = base_ensemble(recipe, t, scores.use)
        table = scores.table(t, base)
        grid = _grid(recipe, t)
        best = tune(table, grid, scores.use)
        held_out = cross_validate(table, scores.folds, grid, scores.use)
        tuned = EnsembleConfig(
            weights=best["weights"],
            threshold=best["threshold"],
            min_links=best["min_links"],
            max_links=best["max_links"],
            normalise=base.normalise,
            rerank_top=base.rerank_top,
            rerank_by=base.rerank_by,
        )
        sections[str(t)] = {
            **tuned.to_dict(),
            "query": scores.modes[t],
            "cv": {"micro_f1_tuned_on_all": round(best["f1"], 4), **{k: round(v, 4) for k, v in held_out.items()}},
        }
    config = {
        "format": FORMAT,
        "components": scores.components,
        "subtasks": sections,
        "training": {**record, "seconds": round(time.perf_counter() - started, 1)},
    }
    if ce_section is not None:
        config["cross_encoder"] = ce_section
    model = AlignerModel(config, out)
    model.save(out)
    return model


__all__ = ["CONFIG_NAME", "CrossEncoderSettings", "held_out_scores", "train_aligner", "train_cross_encoder"]
