"""Evidence identification (ST2) and alignment (ST4): held-out quality, speed and memory.

Quality: every scorer alone and the ensembles, micro P/R/F1 (strict, the official
`ehrqa.score` scorer) on held-out folds. Cases: the mediqa_dev proxy (ST2 gold only, if
the directory exists) and the bundled sample (ST2 + ST4 gold). Each fold's cross-encoder
is trained without that fold; ensemble weights/threshold/max links are tuned on the
other folds' held-out scores and applied to the fold (nested cross-validation).

Speed: wall time of `ehrqa.tasks.align.predict` on 147 cases of ~25 note sentences and
~5 answer sentences (built from the same cases), after the model is loaded and warmed up
on one case; run in a fresh process so that its peak memory (ru_maxrss) is its own.

    python benchmarks/bench_align.py [--mediqa DIR] [--folds 5] [--no-cross-encoder]
    python benchmarks/bench_align.py --timing-only [--model DIR]

The cross-encoder folds take long on 2 shared cores: --save-scores FILE keeps the held-out
scores, --load-scores FILE reprints every number from them.
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("EHRQA_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MEDIQA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mediqa_dev"
QU_NLP = Path(__file__).resolve().parents[1] / "recipes" / "qu-nlp.yaml"


def load_cases(mediqa: Path | None):
    from ehrqa.data.archehr import read_dataset

    cases = list(read_dataset())
    if mediqa and (mediqa / "archehr-qa.xml").is_file():
        cases = list(read_dataset(mediqa)) + cases
    return cases


def held_out_predictions(scores, subtask, recipe, components):
    """Case id -> ST2/ST4 prediction, each fold predicted with parameters tuned on the other folds."""
    from ehrqa.retrieval.ensemble import EnsembleConfig, apply_rerank, combine, decide
    from ehrqa.retrieval.tuning import tune
    from ehrqa.train.aligner import _grid, base_ensemble

    cases = scores.data[subtask]
    base = base_ensemble(recipe, subtask, scores.use)
    if "cross_encoder" not in components:
        base = replace(base, rerank_top=None)
    table = scores.table(subtask, base)
    raw = apply_rerank(scores.raw[subtask], base)
    raw = {n: raw[n] for n in components}
    fold_of_row = [scores.folds[g] for g in table.row_group]
    import numpy as np

    fold_of_row = np.array(fold_of_row)
    predictions = {}
    for fold in sorted(set(scores.folds.values())):
        params = tune(table.subset(fold_of_row != fold), _grid(recipe, subtask), components)
        config = EnsembleConfig(
            weights=params["weights"],
            threshold=params["threshold"],
            min_links=params["min_links"],
            max_links=params["max_links"],
            normalise=base.normalise,
        )
        held = [r for r, c in enumerate(cases) if scores.folds[c.id] == fold]
        combined = combine({n: [m[r] for r in held] for n, m in raw.items()}, config)
        for r, picked in zip(held, decide(combined, config), strict=True):
            case = cases[r]
            ids = [[case.sentences[j].id for j in sorted(row)] for row in picked]
            if subtask == 2:
                predictions[case.id] = ids[0]
            else:
                predictions[case.id] = [
                    {"answer_id": a.id, "evidence_id": e} for a, e in zip(case.answer_sentences, ids, strict=True)
                ]
    return predictions


def is_sample(case) -> bool:
    return not case.id.startswith("20")  # mediqa_dev ids are 2001-2080


def only_sample(scores, subtask):
    """The held-out scores of one subtask restricted to the bundled sample's cases (same folds)."""
    keep = [r for r, c in enumerate(scores.data[subtask]) if is_sample(c)]
    return replace(
        scores,
        data={subtask: [scores.data[subtask][r] for r in keep]},
        raw={subtask: {n: [m[r] for r in keep] for n, m in scores.raw[subtask].items()}},
        gold={subtask: [scores.gold[subtask][r] for r in keep]},
    )


def quality(args) -> None:
    from ehrqa.data.submission import build_submission
    from ehrqa.score import score_submission
    from ehrqa.train.aligner import DEFAULT_RECIPE, held_out_scores, load_recipe

    cases = load_cases(args.mediqa)
    use = ["bm25", "tfidf", "dense"] + ([] if args.no_cross_encoder else ["cross_encoder"])
    recipe = {**DEFAULT_RECIPE, "use": use, "tuning": {**DEFAULT_RECIPE["tuning"], "folds": args.folds}}
    recipe["cross_encoder_training"] = dict(load_recipe(QU_NLP)["cross_encoder_training"])
    if args.weak_pairs is not None:
        recipe["cross_encoder_training"]["weak_pairs"] = args.weak_pairs
    t0 = time.perf_counter()
    if args.load_scores:
        with open(args.load_scores, "rb") as f:
            scores = pickle.load(f)
        use = scores.use
        print(f"held-out scores from {args.load_scores}")
    else:
        scores = held_out_scores(cases, recipe)
        print(f"scored {len(cases)} cases in {time.perf_counter() - t0:.1f} s ({args.folds}-fold)")
        if args.save_scores:
            scores.features = None
            with open(args.save_scores, "wb") as f:
                pickle.dump(scores, f)
    if scores.fold_training_s:
        s = scores.fold_training_s
        print(f"cross-encoder training per fold: mean {sum(s) / len(s):.1f} s, max {max(s):.1f} s; {scores.settings}")
    systems = [[n] for n in use] + [["bm25", "tfidf"], ["bm25", "tfidf", "dense"]]
    if "cross_encoder" in use:
        systems += [["bm25", "tfidf", "cross_encoder"], use]
    views = [(t, scores) for t in scores.data]
    if any(not is_sample(c) for c in scores.data.get(2, [])):
        views.insert(1, (2, only_sample(scores, 2)))  # ST2 on the clinical-register cases alone
    for subtask, view in views:
        subset = view.data[subtask]
        sources = sorted({"sample" if is_sample(c) else "mediqa_dev" for c in subset})
        print(f"\nST{subtask}: {len(subset)} held-out cases ({' + '.join(sources)}), strict micro, ehrqa.score")
        print(f"  {'system':38s} {'P':>6s} {'R':>6s} {'F1':>6s}")
        for components in systems:
            predictions = held_out_predictions(view, subtask, recipe, components)
            entries = build_submission(subtask, predictions, subset)
            result = score_submission(subtask, entries, subset)
            prefix = "strict_micro_" if subtask == 2 else "micro_"
            p, r, f = (result[prefix + k] for k in ("precision", "recall", "f1"))
            print(f"  {'+'.join(components):38s} {p:6.2f} {r:6.2f} {f:6.2f}")


def distinct_copy(case, copy: int, case_id: str):
    """The case under a new id; from the second copy on, every text gets a marker so that no
    scorer can reuse work done on an earlier copy."""
    from ehrqa.data.case import AnswerSentence

    case = replace(case, id=case_id).input_for(4)
    if copy == 0:
        return case
    mark = f" (copy {copy})"
    sentences = tuple(replace(s, text=s.text + mark) for s in case.sentences)
    answers = tuple(AnswerSentence(a.id, a.text + mark, None) for a in case.answer_sentences)
    return replace(case, sentences=sentences, answer_sentences=answers)


def timing(args) -> None:
    from ehrqa.tasks import align, identify

    pool = [c for c in load_cases(args.mediqa) if c.answer_sentences and c.sentences]
    cases = [distinct_copy(pool[i % len(pool)], i // len(pool), str(1000 + i)) for i in range(147)]
    n_sent = sum(len(c.sentences) for c in cases) / len(cases)
    n_ans = sum(len(c.answer_sentences) for c in cases) / len(cases)
    from ehrqa.retrieval.aligner import load_model

    t0 = time.perf_counter()
    model = load_model(args.model)
    align.predict(cases[:1], model)
    identify.predict(cases[:1], model)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    links = align.predict(cases, model)
    align_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    identify.predict(cases, model)
    identify_s = time.perf_counter() - t0
    assert len(links) == 147
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"model: {model.path}")
    print(f"147 cases, {n_sent:.1f} note sentences and {n_ans:.1f} answer sentences per case on average")
    print(f"load + warm-up: {load_s:.1f} s; align (ST4): {align_s:.2f} s; identify (ST2): {identify_s:.2f} s")
    print(f"peak memory (ru_maxrss): {peak:.0f} MiB; torch threads: {_threads()}")
    if args.with_cross_encoder:
        cross_encoder_timing(cases)


def cross_encoder_timing(cases) -> None:
    """Train the QU-NLP cross-encoder on the bundled sample (timed), then time ST4 alignment of
    the 147 cases with it scoring every pair (the paper) and only each query's top 5 (rerank)."""
    import tempfile

    from ehrqa.data.archehr import read_dataset
    from ehrqa.retrieval.aligner import FORMAT, AlignerModel
    from ehrqa.tasks import align
    from ehrqa.train.aligner import load_recipe, training_pairs
    from ehrqa.train.cross_encoder import CrossEncoderSettings, save_cross_encoder, train_cross_encoder

    recipe = load_recipe(QU_NLP)
    settings = CrossEncoderSettings.from_dict(recipe["cross_encoder_training"])
    sample = read_dataset()
    pairs = training_pairs(sample, 2, "clinician") + training_pairs(sample, 4, "answer")
    t0 = time.perf_counter()
    trained = train_cross_encoder(pairs, settings)
    print(
        f"cross-encoder training on the sample ({len(pairs)} pairs before balancing): {time.perf_counter() - t0:.1f} s"
    )
    with tempfile.TemporaryDirectory() as directory:
        section = save_cross_encoder(trained, settings, Path(directory))
        size = (Path(directory) / section["weights"]).stat().st_size / 1e6
        for rerank_top in (None, 5):
            config = {
                "format": FORMAT,
                "components": recipe["components"],
                "cross_encoder": section,
                "subtasks": {
                    "4": {
                        "weights": {"bm25": 0.4, "tfidf": 0.2, "cross_encoder": 0.4},
                        "threshold": 0.5,
                        "max_links": 3,
                        "rerank_top": rerank_top,
                        "query": "answer",
                    }
                },
            }
            model = AlignerModel(config, Path(directory))
            model.save(directory)
            align.predict(cases[:1], model)
            t0 = time.perf_counter()
            align.predict(cases, model)
            what = "every pair" if rerank_top is None else f"top {rerank_top} per answer sentence"
            print(f"align (ST4) with the cross-encoder on {what}: {time.perf_counter() - t0:.1f} s")
        print(f"stored cross-encoder tensors: {size:.1f} MB (fp16, top {settings.trained_layers} layers + head)")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak memory including training (ru_maxrss): {peak:.0f} MiB")


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mediqa", type=Path, default=MEDIQA, help="mediqa_dev directory (skipped if absent)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--no-cross-encoder", action="store_true", help="skip the (slow) cross-encoder folds")
    parser.add_argument("--model", help="aligner model directory for the timing (default: the shipped model)")
    parser.add_argument("--timing-only", action="store_true")
    parser.add_argument(
        "--with-cross-encoder", action="store_true", help="also time cross-encoder training and alignment (minutes)"
    )
    parser.add_argument("--quality-only", action="store_true")
    parser.add_argument("--save-scores", metavar="FILE", help="pickle the held-out component scores here")
    parser.add_argument("--weak-pairs", type=int, metavar="N", help="MedQuAD weak first-stage pairs (default: recipe)")
    parser.add_argument("--load-scores", metavar="FILE", help="reuse held-out scores saved by --save-scores")
    args = parser.parse_args()
    if args.timing_only:
        timing(args)
        return
    if not args.quality_only:
        command = [sys.executable, __file__, "--timing-only", "--mediqa", str(args.mediqa)]
        if args.model:
            command += ["--model", args.model]
        if args.with_cross_encoder:
            command.append("--with-cross-encoder")
        subprocess.run(command, check=True)
    quality(args)


if __name__ == "__main__":
    main()
