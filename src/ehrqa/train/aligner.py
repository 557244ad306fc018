"""Training the aligner: score the training cases with every component (the cross-encoder
out-of-fold), tune the ensemble by k-fold cross-validation on those cases only, and write the
model directory (:mod:`ehrqa.retrieval.aligner`).

Cross-encoder training pairs are (query, note sentence, label):
- ST2: (clinician question, sentence, 1 if essential else 0), from relevance labels;
- ST4: (answer sentence, note sentence, 1 if cited else 0), from answer-sentence citations;
- optional weak first stage from MedQuAD (:func:`ehrqa.train.cross_encoder.medquad_pairs`).

:func:`train_aligner` is the whole recipe: out-of-fold cross-encoder scores (a model per
fold, trained without that fold), the cheap scorers on every case, an exhaustive search of
weights / threshold / max links per subtask on those held-out scores, a final
cross-encoder on all cases, and the model directory. :func:`train_learned_aligner` fits the
learned relevance combiner instead (:mod:`ehrqa.retrieval.relevance`, the shipped default's kind)
on named sources, :func:`shipped_sources` being the default's own (``ehrqa train aligner --learned``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ehrqa.data.case import Case
from ehrqa.errors import DataError
from ehrqa.retrieval.aligner import FORMAT, QUERY_MODES, AlignerModel, requests_for
from ehrqa.retrieval.base import COMPONENTS
from ehrqa.retrieval.dense import MINILM
from ehrqa.retrieval.ensemble import EnsembleConfig
from ehrqa.retrieval.features import ROBUST_FEATURES, Encoder, feature_tensors, queries_for
from ehrqa.retrieval.relevance import RULES
from ehrqa.retrieval.tuning import ScoreTable, TuningGrid, cross_validate, make_folds, tune
from ehrqa.train.cross_encoder import (
    CrossEncoderSettings,
    FrozenFeatures,
    Pair,
    save_cross_encoder,
    train_cross_encoder,
)
from ehrqa.train.encoder import Triple

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class AlignerRecipe:
    """The ``aligner:`` section's keys and their types; the scorer and tuning options inside are
    checked by the scorers and :mod:`ehrqa.retrieval.tuning` that read them."""

    use: list[str] = field(default_factory=lambda: ["bm25", "tfidf", "cross_encoder"])
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    cross_encoder_training: dict[str, Any] = field(default_factory=dict)
    subtasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    tuning: dict[str, Any] = field(default_factory=dict)


def load_recipe(path: str | Path | None = None) -> dict:
    """The ``aligner:`` section of a YAML recipe (keys and types checked by :mod:`ehrqa.config`), or a
    copy of :data:`DEFAULT_RECIPE`; a file of another kind is a one-line :class:`DataError`."""
    import copy

    from ehrqa.config import from_dict, load_yaml, to_dict

    if path is None:
        return copy.deepcopy(DEFAULT_RECIPE)
    section = load_yaml(path, "aligner recipe").get("aligner")
    if not isinstance(section, dict):
        raise DataError(f"{path}: no `aligner:` section (a run recipe goes to `ehrqa run --recipe`)")
    return {k: v for k, v in to_dict(from_dict(AlignerRecipe, section, f"{path}: aligner")).items() if k in section}


# ---------------------------------------------------------------------------------------------
# Training pairs


def gold_indices(subtask: int, case: Case) -> list[set[int]]:
    """Per query of the subtask, the indices of the gold note sentences."""
    index = {s.id: j for j, s in enumerate(case.sentences)}
    if subtask == 2:
        return [{index[i] for i in case.essential_ids if i in index}]
    return [{index[c] for c in a.citations or () if c in index} for a in case.answer_sentences or ()]


def trainable(subtask: int, case: Case) -> bool:
    """A case to train on: a note, and the subtask's gold (with at least one answer sentence for ST4)."""
    return bool(case.sentences) and case.has_gold(subtask) and (subtask == 2 or bool(case.answer_sentences))


def training_pairs(cases: Sequence[Case], subtask: int, query_mode: str) -> list[Pair]:
    pairs: list[Pair] = []
    cases = [c for c in cases if trainable(subtask, c)]
    for case, (queries, sentences) in zip(cases, requests_for(subtask, cases, query_mode), strict=True):
        for query, gold in zip(queries, gold_indices(subtask, case), strict=True):
            pairs.extend((query, s, float(j in gold)) for j, s in enumerate(sentences))
    return pairs


def evidence_triples(subtask: int, cases: Sequence[Case], seed: int = 13) -> list[Triple]:
    """Examples for teaching the encoder (:mod:`ehrqa.train.encoder`): (query, evidence sentence,
    non-evidence sentence of the same note or None) for every gold link of ``cases``: ST2 the
    clinician question and each essential sentence, ST4 each answer sentence and each sentence it
    cites. Only a subtask's official input and gold are read."""
    import random

    rng = random.Random(seed)
    out: list[Triple] = []
    for case in cases:
        if not trainable(subtask, case):
            continue
        queries, _ = queries_for(subtask, case.input_for(subtask))
        sentences = [s.text for s in case.sentences]
        for query, gold in zip(queries, gold_indices(subtask, case), strict=True):
            others = [s for j, s in enumerate(sentences) if j not in gold]
            for j in sorted(gold):
                out.append((query, sentences[j], rng.choice(others) if others else None))
    return out


def source_triples(sources: dict[int, dict[str, Sequence[Case]]], seed: int = 13) -> dict[str, list[Triple]]:
    """Source name -> its :func:`evidence_triples` over every subtask it serves (``sources``:
    subtask -> name -> cases)."""
    out: dict[str, list[Triple]] = {}
    for subtask, per_source in sources.items():
        for name, cases in per_source.items():
            out.setdefault(name, []).extend(evidence_triples(subtask, cases, seed))
    return out


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
    data = {t: [c for c in cases if trainable(t, c)] for t in wanted}
    data = {t: cs for t, cs in data.items() if cs}
    if not data:
        raise ValueError("no training cases with gold for the requested subtasks (ST2 relevance or ST4 citations)")
    modes = {t: _subtask_settings(recipe, t).get("query", QUERY_MODES[t][0]) for t in data}
    all_ids = sorted({c.id for cs in data.values() for c in cs})
    folds = make_folds(all_ids, int(tuning.get("folds", 5)), int(tuning.get("seed", 13)))
    requests = {t: requests_for(t, cs, modes[t]) for t, cs in data.items()}
    gold = {t: [gold_indices(t, c) for c in cs] for t, cs in data.items()}

    raw: dict[int, dict[str, list[np.ndarray]]] = {t: {} for t in data}
    cheap = [name for name in use if name != "cross_encoder"]  # the features inference computes the same way
    dense = components.get("dense", {})
    encoder = Encoder(dense.get("model"), batch_size=dense.get("batch_size"))
    for t, cs in data.items():
        inputs = [c.input_for(t) for c in cs]
        tensors = feature_tensors(t, inputs, encoder, cheap, query=modes[t], components=components) if cheap else []
        for i, name in enumerate(cheap):
            raw[t][name] = [tensor[..., i] for tensor in tensors]
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


# ---------------------------------------------------------------------------------------------
# The learned relevance aligner (the shipped default)

ROBUST_C = 0.01  # L2 strength of the shipped combiner (strong: a few features, sources that disagree)
BLEND_WEIGHTS = tuple(round(w / 10, 1) for w in range(11))
# How the shipped default is fitted, per subtask (keyword arguments of fit_relevance; measured by
# benchmarks/bench_heldout.py). ST2: an absolute threshold on the calibrated probability, so the
# number kept follows the note instead of a share fixed by the training sources. ST4: the
# probability blended with BM25's relative score, kept relative to each answer sentence's best.
DEFAULT_FIT: dict[int, dict] = {
    2: {"c": ROBUST_C, "rule_folds": "none", "rules": ("threshold",), "max_links": (None,)},
    4: {
        "c": ROBUST_C,
        "rule_folds": "none",
        "rules": ("relative",),
        "blends": BLEND_WEIGHTS,
        "max_links": (None, 1, 2, 3, 4, 5),
    },
}
CORPORA = Path(__file__).resolve().parent.parent / "resources" / "corpora"
CHECK_COVID = CORPORA / "check_covid"  # bundled copy of the Check-COVID release (MIT)


def aci_dev_dir() -> Path:
    """The bundled aci_dev cases (CC BY 4.0), decompressed once into the cache dir."""
    import gzip
    import shutil

    from ehrqa.cache import build_once, cache_dir

    def decompress(tmp: Path) -> None:
        for name in ("archehr-qa.xml", "archehr-qa_key.json", "archehr-qa_mapping.json"):
            with gzip.open(CORPORA / "aci_dev" / f"{name}.gz", "rb") as src, open(tmp / name, "wb") as dst:
                shutil.copyfileobj(src, dst)

    return build_once(cache_dir() / "corpora" / "aci_dev", "archehr-qa_key.json", decompress)


def training_sources(shared: str | Path | None = None) -> dict[str, list[Case]]:
    """The annotated sources the shipped aligner learns from: aci_dev, mediqa_dev (both bundled,
    or read from ``shared``/<name> when given) and the bundled sample."""
    from ehrqa.data.archehr import read_dataset
    from ehrqa.train.examples import mediqa_dev_dir

    if shared is not None:
        aci, mediqa = Path(shared) / "aci_dev", Path(shared) / "mediqa_dev"
    else:
        aci, mediqa = aci_dev_dir(), mediqa_dev_dir()
    return {
        "aci_dev": list(read_dataset(aci)),
        "mediqa_dev": list(read_dataset(mediqa)),
        "sample": list(read_dataset()),
    }


def check_covid_cases(directory: str | Path = CHECK_COVID) -> list[Case]:
    """Check-COVID as ST4-shaped cases: one per abstract, its sentences the note, and each claim
    with evidence an answer sentence citing its evidence sentences (claims without evidence dropped)."""
    import gzip
    import json

    from ehrqa.data.case import AnswerSentence, NoteSentence

    directory = Path(directory)
    corpus_file, claims_file = directory / "corpus.json.gz", directory / "Check-COVID_all.json.gz"
    if not corpus_file.is_file() or not claims_file.is_file():
        raise DataError(f"{directory}: no Check-COVID corpus.json.gz / Check-COVID_all.json.gz")
    with gzip.open(corpus_file, "rt", encoding="utf-8") as f:
        abstracts = {d["cord_id"]: d["abstract"] for d in map(json.loads, f)}
    claims: dict[str, list[AnswerSentence]] = {}
    with gzip.open(claims_file, "rt", encoding="utf-8") as f:
        for d in map(json.loads, f):
            sentences = abstracts.get(d["cord_id"], [])
            cited = sorted({str(e["sent_index"] + 1) for e in d["evidence_set"] if e["sent_index"] < len(sentences)})
            if cited:
                per = claims.setdefault(d["cord_id"], [])
                per.append(AnswerSentence(str(len(per) + 1), d["claim"], tuple(cited)))
    return [
        Case(
            id=f"covid-{cord_id}",
            narrative="",
            sentences=tuple(NoteSentence(str(j + 1), t) for j, t in enumerate(abstracts[cord_id])),
            answer_sentences=tuple(answers),
        )
        for cord_id, answers in sorted(claims.items())
    ]


def shipped_sources(
    own: Sequence[Case] = (), name: str = "yours", shared: str | Path | None = None
) -> dict[int, dict[str, list[Case]]]:
    """Per subtask, the sources the shipped default learns from (ST2: aci_dev, mediqa_dev, the
    sample; ST4: aci_dev, the sample, Check-COVID), plus ``own`` cases as a source called ``name``;
    ``shared``: read aci_dev, mediqa_dev and raw/check_covid there instead of the bundled copies."""
    data = training_sources(shared)
    covid = check_covid_cases(Path(shared) / "raw" / "check_covid" if shared else CHECK_COVID)
    sources = {
        2: dict(data),
        4: {"aci_dev": data["aci_dev"], "sample": data["sample"], "check_covid": covid},
    }
    if own:
        if any(name in per_subtask for per_subtask in sources.values()):
            raise ValueError(f"a training source is already called {name!r}")
        for per_subtask in sources.values():
            per_subtask[name] = list(own)
    return sources


def _of(encoder, source: str):
    """The encoder of a source's features: ``encoder`` itself, or its entry when it maps sources
    to encoders (a taught encoder's cross-fitted features, :class:`ehrqa.train.encoder.CrossFitted`)."""
    return encoder[source] if isinstance(encoder, dict) else encoder


def learned_section(
    subtask: int,
    sources: dict[str, Sequence[Case]],
    features: Sequence[str],
    encoder=None,
    augmentation: Sequence[str] = ("check_covid",),
    fit: dict | None = None,
) -> dict:
    """A ``kind: learned`` subtask section fitted on every case with gold in ``sources`` (name -> cases);
    the decision rule is chosen on the sources not named in ``augmentation``; ``fit``: keyword
    arguments of :func:`~ehrqa.retrieval.relevance.fit_relevance` (default :data:`DEFAULT_FIT`)."""
    from ehrqa.retrieval.relevance import fit_relevance

    cases, names, tensors = [], [], []
    for name, cs in sources.items():
        with_gold = [c for c in cs if trainable(subtask, c)]
        cases += with_gold
        names += [name] * len(with_gold)
        tensors += feature_tensors(subtask, [c.input_for(subtask) for c in with_gold], _of(encoder, name), features)
    if not cases:
        raise ValueError(f"no training cases with gold for subtask {subtask}")
    gold = [gold_indices(subtask, c) for c in cases]
    rule_sources = [n for n in sources if n not in augmentation] or None
    settings = DEFAULT_FIT[subtask] if fit is None else fit
    model = fit_relevance(tensors, gold, names, features, rule_sources=rule_sources, **settings)
    return {**model.to_dict(), "query": "clinician" if subtask == 2 else "answer"}


# ---------------------------------------------------------------------------------------------
# The ST3 extractive ranking stored beside the ST2 section

ST3_METRICS = ("bleu", "rougeLsum", "sari")
EXTRACTIVE_BLENDS = (None, 0.25, 0.5, 0.75)  # weights of relative BM25 against the ST2 score


def extractive_answers(cases: Sequence[Case], tensors: Sequence[np.ndarray], model, weight, fill: bool) -> dict:
    """Case id -> extractive answer text: the sentences the ST2 ``model`` selects (then the rest by
    score when ``fill``), ranked by its score or by it blended with relative BM25 (``weight``);
    ``tensors``: each case's ST2 features, the model's columns in its order."""
    from ehrqa.retrieval.extractive import extractive_answer, ranked_ids
    from ehrqa.retrieval.relevance import blend_scores

    out = {}
    for case, tensor in zip(cases, tensors, strict=True):
        scores = model.scores(tensor)
        chosen = [case.sentences[j].id for j in model.select(scores)[0]]
        if weight is not None:
            scores = blend_scores(scores, tensor[:, :, model.features.index("bm25")], weight)
        order = ranked_ids(scores[0], chosen, case)  # the selected sentences first
        out[case.id] = extractive_answer(case, order if fill else order[: len(chosen)])[0]
    return out


def st3_scores(cases: Sequence[Case], answers: dict) -> dict:
    """BLEU, ROUGE-Lsum and SARI of extractive answers (``ehrqa.score``), and ``per_case`` records."""
    from ehrqa.score import score_predictions

    return score_predictions(3, answers, cases, metrics="bleu,rouge,sari", per_case=True)


def choose_extractive(sources: dict[str, Sequence[Case]], model, encoder=None) -> dict:
    """The ``extractive`` section: the filling and BM25 blend with the best mean of BLEU, ROUGE-Lsum
    and SARI over ``sources`` (name -> cases with reference answers), the ST2 ``model`` fixed."""
    cases = {n: [c for c in cs if c.answer and c.sentences] for n, cs in sources.items()}
    cases = {n: cs for n, cs in cases.items() if cs}
    if not cases:
        raise ValueError("choosing the extractive settings needs cases with reference answers")
    tensors = {
        n: feature_tensors(2, [c.input_for(2) for c in cs], _of(encoder, n), model.features) for n, cs in cases.items()
    }

    def mean_score(fill: bool, weight: float | None) -> float:
        per_source = []
        for name, cs in cases.items():
            scores = st3_scores(cs, extractive_answers(cs, tensors[name], model, weight, fill))
            per_source.append(np.mean([scores[m] for m in ST3_METRICS]))
        return float(np.mean(per_source))

    candidates = [(f, w) for f in (True, False) for w in EXTRACTIVE_BLENDS]
    fill, weight = max(candidates, key=lambda fw: mean_score(*fw))
    return {"fill": fill, "bm25_blend": weight, "chosen_on": sorted(cases)}


# ---------------------------------------------------------------------------------------------
# The whole learned recipe: what ships as models/aligner-default


def train_learned_aligner(
    sources: dict[int, dict[str, Sequence[Case]]],
    features: Sequence[str],
    out: str | Path,
    encoder=None,
    record: dict | None = None,
    augmentation: Sequence[str] = ("check_covid",),
    teach=None,
) -> AlignerModel:
    """Fit one learned section per subtask (``sources``: subtask -> source name -> cases), choose the
    ST3 extractive settings on the ST2 sources with reference answers (when there are any), and
    save; ``record``: extra facts for the training record; ``teach``: an
    :class:`~ehrqa.train.encoder.EncoderSettings` to teach MiniLM on every source first (its top
    layers saved beside ``aligner.json``; each source's features cross-fitted)."""
    from ehrqa.retrieval.relevance import LearnedRelevance

    started = time.perf_counter()
    dense = {"model": getattr(encoder, "model", None) or MINILM}  # the encoder the features were read with
    if teach is not None:
        if dense["model"] != MINILM:
            raise DataError(f"teaching the encoder works on {MINILM}, not {dense['model']}")
        from ehrqa.train.encoder import CrossFitted, save_encoder

        family = CrossFitted(source_triples(sources), teach)
        names = sorted(family.triples)
        encoder = family.per_source(names)
        family.vectors(names)  # the encoder that ships, taught on every source
        key = frozenset(names)
        taught = {"triples": {n: len(family.triples[n]) for n in names}, "seconds": family.seconds[key]}
        dense = save_encoder(family.tensors[key], teach, out, taught)
    encoder = encoder or Encoder()
    sections = {
        str(t): learned_section(t, per_source, features, encoder, augmentation) for t, per_source in sources.items()
    }
    config = {
        "format": FORMAT,
        "components": {"dense": dense},
        "subtasks": sections,
        "training": {
            "sources": {str(t): sorted(per_source) for t, per_source in sources.items()},
            "cases": {
                str(t): {name: sum(trainable(t, c) for c in cs) for name, cs in per_source.items()}
                for t, per_source in sources.items()
            },
            "features": "ehrqa.retrieval.features.ROBUST_FEATURES"
            if tuple(features) == ROBUST_FEATURES
            else list(features),
            "fit": "ehrqa.train.aligner.DEFAULT_FIT",
            "encoder_dtype": "fp32" if teach is not None else getattr(encoder, "dtype", "fp32"),
            **(record or {}),
        },
    }
    st2_sources = {n: cs for n, cs in sources.get(2, {}).items() if n not in augmentation}
    if "2" in sections and any(c.answer for cs in st2_sources.values() for c in cs):
        st2 = LearnedRelevance.from_dict(sections["2"])
        config["extractive"] = choose_extractive(st2_sources, st2, encoder)
    config["training"]["seconds"] = round(time.perf_counter() - started, 1)
    model = AlignerModel(config, Path(out))
    model.save(out)
    return model


def train_default_kind(
    out: str | Path,
    own: Sequence[Case] = (),
    bundled: bool = True,
    subtasks: Sequence[int] = (2, 4),
    encoder=None,
    shared: str | Path | None = None,
    teach=None,
    dense_model: str | None = None,
) -> AlignerModel:
    """``ehrqa train aligner --learned``: the shipped default's recipe (:data:`ROBUST_FEATURES`,
    :data:`DEFAULT_FIT`, the extractive choice) on the bundled sources (``bundled``; ``shared``: read
    them there) plus ``own`` cases. Without ``own`` and with every subtask this writes exactly
    ``models/aligner-default`` (``encoder``: a cached :class:`~ehrqa.retrieval.features.Encoder`;
    ``teach``: see :func:`train_learned_aligner`; ``dense_model``: the dense features' encoder, when
    ``encoder`` is not given, e.g. ``nomic-embed-text-v1.5``)."""
    if dense_model and encoder is None:
        encoder = Encoder(dense_model)
    dense_model = getattr(encoder, "model", None) or dense_model
    if bundled:
        sources = {t: per for t, per in shipped_sources(own, shared=shared).items() if t in subtasks}
    elif own:
        sources = {t: {"yours": list(own)} for t in subtasks}
    else:
        raise DataError("--no-bundled needs your cases: --data DIR or --xml/--key")
    sources = {t: per for t, per in sources.items() if any(trainable(t, c) for cs in per.values() for c in cs)}
    if not sources:
        wanted = ",".join(map(str, subtasks))
        raise DataError(f"no training cases with gold for subtask {wanted} (ST2 relevance, ST4 citations)")
    command = "ehrqa train aligner --learned" + ("" if bundled else " --no-bundled")
    command += " --data YOUR_CASES" if own else ""
    command += " --teach-encoder" if teach is not None else ""
    command += f" --dense-model {dense_model}" if dense_model and dense_model != MINILM else ""
    return train_learned_aligner(sources, list(ROBUST_FEATURES), out, encoder, {"command": command}, teach=teach)


# ---------------------------------------------------------------------------------------------
# Calibration on the user's own annotated cases

# What a calibration re-chooses (keyword arguments of relevance.choose_rule beside the thresholds):
# ``threshold``: the threshold alone, the section's rule, max links and blend kept; ``rule``: any
# rule (threshold, relative, a fraction of the note) and, for ST4, the max links and BM25 blend.
CALIBRATE_SEARCHES = ("threshold", "rule")


def calibration_candidates(combiner, subtask: int, search: str) -> dict:
    """The decision rules a calibration tries (keyword arguments of ``relevance.choose_rule``)."""
    weighted = isinstance(combiner, EnsembleConfig)  # its rule is a threshold on the combined score
    if search == "threshold":
        kept = {"rules": (combiner.decision_rule.rule,), "max_links": (combiner.max_links,)}
        return {**kept, "blends": (None,) if weighted else (combiner.blend,)}
    if search == "rule":
        rules = ("threshold",) if weighted else RULES
        if subtask == 2:
            return {"rules": rules, "max_links": (None,)}
        blends = BLEND_WEIGHTS if not weighted and "bm25" in combiner.features else (None,)  # a blend adds BM25
        return {"rules": rules, "max_links": (None, 1, 2, 3, 4, 5), "blends": blends}
    raise ValueError(f"calibration search {search!r}: expected one of {', '.join(CALIBRATE_SEARCHES)}")


def calibrated_section(
    section: dict,
    subtask: int,
    cases: Sequence[Case],
    encoder=None,
    search: str = "threshold",
    components: dict | None = None,
    model_dir: str | Path | None = None,
) -> dict:
    """A subtask ``section`` of ``aligner.json`` with the same features and combiner and the
    decision rule (``search``: its threshold, or any rule, max links and, for the logistic
    combiner, BM25 blend) that scores best on ``cases`` (with gold) alone; ``components`` and
    ``model_dir``: the model's scorer options and directory (for a cross-encoder feature)."""
    from ehrqa.retrieval.relevance import LearnedRelevance, Rows, choose_rule

    settings = {k: v for k, v in section.items() if k not in ("kind", "query", "cv")}
    learned = section.get("kind") == "learned"
    combiner = LearnedRelevance.from_dict(settings) if learned else EnsembleConfig.from_dict(settings)
    candidates = calibration_candidates(combiner, subtask, search)
    cases = [c for c in cases if trainable(subtask, c)]
    if not cases:
        raise DataError(f"calibration: no case with gold for subtask {subtask} (ST2 relevance, ST4 citations)")
    inputs = [c.input_for(subtask) for c in cases]
    tensors = feature_tensors(
        subtask,
        inputs,
        encoder,
        combiner.features,
        query=section.get("query"),
        components=components,
        model_dir=model_dir,
        rerank=combiner.rerank,
    )
    gold, yours = [gold_indices(subtask, c) for c in cases], ["yours"] * len(cases)
    if learned:
        rows = Rows.build(tensors, gold, yours)
        scores, names = combiner.probabilities(rows.x), combiner.features
    else:  # the rule reads the combined score: one column
        rows = Rows.build([combiner.scores(t)[..., None] for t in tensors], gold, yours)
        scores, names = rows.x[:, 0], ["combined"]
        candidates["thresholds"] = tuple(np.round(np.arange(0.0, 1.0 + 1e-9, 0.02), 2))
    choice = choose_rule(rows, scores, names, min_links=combiner.min_links, **candidates)
    chosen = {
        "rule_chosen_on": f"calibration ({search}) on {len(cases)} cases of yours",
        "rule_mean_source_f1": round(choice.f1, 4),
    }
    if learned:
        return {**section, **choice.settings(), "record": {**combiner.record, **chosen}}
    return {**section, "threshold": choice.threshold, "max_links": choice.max_links, "cv": chosen}


# The subtasks calibrated unless asked otherwise. Held out (bench_heldout.py --calibration: 20
# cases of a source choose the threshold, the rest are scored; mean F1 change over the sources),
# calibrating ST2 gained +0.04 with fp32 vectors, +1.77 with bf16, +2.0 on nomic-embed (sources
# differ most in how many sentences are essential); calibrating ST4 lost -0.52, -0.83 and -2.1:
# its rule chosen on the training sources scored better than one chosen on 20 cases.
CALIBRATED_SUBTASKS = (2,)


def calibrate_aligner(
    base: AlignerModel,
    cases: Sequence[Case],
    out: str | Path,
    subtasks: Sequence[int] = CALIBRATED_SUBTASKS,
    encoder=None,
) -> AlignerModel:
    """``base`` with the threshold of each subtask section re-chosen on ``cases`` (the user's
    annotated cases) and saved to ``out``; features, combiner weights and the other subtasks'
    sections are kept."""
    import copy

    config = copy.deepcopy(base.config)
    calibrated = []
    for subtask in subtasks:
        section = config.get("subtasks", {}).get(str(subtask))
        if section is None or not any(trainable(subtask, c) for c in cases):
            continue
        config["subtasks"][str(subtask)] = calibrated_section(
            section, subtask, cases, encoder or base.encoder(), components=config.get("components"), model_dir=base.path
        )
        calibrated.append(str(subtask))
    if not calibrated:
        raise DataError("calibration: no case with gold for the aligner's subtasks (ST2 relevance, ST4 citations)")
    config["training"] = {
        **config.get("training", {}),
        "calibrated": {"from": str(base.path), "subtasks": calibrated, "cases": len(cases)},
    }
    model = AlignerModel(config, base.path)  # saving carries a taught encoder's weights over
    model.save(out)
    return model
