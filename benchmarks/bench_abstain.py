"""Abstention on held-out sources: does ``ehrqa answer`` refuse questions the note cannot answer,
and how many real questions does it wrongly refuse?

Protocol (printed with the table). Sources: the bundled aci_dev, mediqa_dev and the sample
(``train.aligner.training_sources``). Pairs are asked as ``ehrqa answer`` asks them (the note's
sentences, the clinician question, no narrative):

- answerable: every real case, its own question of its own note;
- unanswerable: one case's question asked of another case's note of the same source, on another
  topic (the two questions share no content word, see :func:`same_topic`). The 1:1 set pairs each
  question with one such note (the next one in source order); "all" asks it of the next
  :data:`OTHER_NOTES` such notes (all of them in a small source).

Leave one source out, twice over: the ST2 evidence scores of a held-out source come from an
aligner fitted like the shipped default (``ROBUST_FEATURES``, ``DEFAULT_FIT``) on the OTHER
sources only, and the abstention decision (a bar on the best sentence's score, the one with the
best balanced accuracy) is fitted on the other sources' held-out scores only. Nothing is tuned
on the held-out source. The AUC columns (real pair above unanswerable pair) compare the best
sentence's score with the mean of the best three.

Columns: precision and recall of abstention on the 1:1 set (abstained unanswerable pairs / all
abstentions; / all unanswerable pairs), the recall on every unanswerable pair, and the real
questions wrongly refused. A second table scores (ST3) the real questions' extractive answers
built from the ST2 selection, as ST3 submissions are, against answers from only the sentences
that clear the bar, as ``ehrqa answer`` builds them.

    python benchmarks/bench_abstain.py                  # the tables (about 5 minutes on 1 core)
    python benchmarks/bench_abstain.py --write          # also refit models/abstain.json on every source
    python benchmarks/bench_abstain.py --scores FILE    # keep the computed scores in FILE (reused if present)

The shipped decision (``--write``) is fitted on the held-out scores of all three sources: what the
shipped aligner's scores look like on notes it never saw.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("EHRQA_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from ehrqa.data.case import Case  # noqa: E402
from ehrqa.retrieval.answerable import (  # noqa: E402
    STATISTICS,
    Decision,
    aligner_sha256,
    evidence_scores,
    fit_bar,
    question_only,
)

# Words that say what kind of question it is, not what it is about.
GENERIC = set(
    """what why when where which who whom whose how does did done doing could would should will shall
    there their they them then than this that these those have has had having with from after before
    about into over under been being were your yours mean means happen happens happened next best plan
    planned cause caused causes causing treat treated treatment treatments manage managed management
    recommended ordered started given prescribed expected need needed needs require required more most
    other another also just only still ever some any many much long often common help""".split()
)


OTHER_NOTES = 15  # unanswerable pairs per question in the "all" set


def content_words(question: str) -> set[str]:
    """The question's content words (4+ letters, not generic), cut to 5 letters ("fracture(s)")."""
    words = re.findall(r"[a-z][a-z0-9-]{3,}", question.lower())
    return {w[:5] for w in words if w not in GENERIC}


def same_topic(a: Case, b: Case) -> bool:
    return bool(content_words(a.clinician_question or "") & content_words(b.clinician_question or ""))


def as_asked(question_case: Case, note_case: Case, case_id: str) -> Case:
    """The question of one case asked of the note of another, as ``ehrqa answer`` judges it."""
    question = question_case.clinician_question or question_case.patient_question
    return question_only(replace(note_case, id=case_id, clinician_question=question))


def pairs(cases: list[Case]) -> dict[str, list[tuple[int, int]]]:
    """(question index, note index) pairs: ``real``, ``one`` (1:1 unanswerable) and ``all`` unanswerable."""
    n = len(cases)
    out = {"real": [(i, i) for i in range(n)], "one": [], "all": []}
    for i in range(n):
        others = [(i + k) % n for k in range(1, n)]
        other_topic = [j for j in others if not same_topic(cases[i], cases[j])]
        out["all"] += [(i, j) for j in other_topic[:OTHER_NOTES]]
        if other_topic:
            out["one"].append((i, other_topic[0]))
    return out


def held_out_aligner(train: dict[str, list[Case]], directory: Path):
    """An aligner fitted like the shipped default on ``train`` only (ST2 section)."""
    from bench_heldout import encoder

    from ehrqa.retrieval.features import ROBUST_FEATURES
    from ehrqa.train.aligner import train_learned_aligner

    return train_learned_aligner({2: train}, list(ROBUST_FEATURES), directory, encoder())


def held_out_scores(
    data: dict[str, list[Case]], keep: Path | None = None
) -> dict[str, dict[tuple[int, int], np.ndarray]]:
    """Per source, the ST2 scores of every real and unanswerable pair from an aligner that never saw
    it, and (key ``SOURCE:st2``) that aligner's ST2 section; ``keep``: a file holding the scores
    computed so far (read, then written after each source)."""
    out = pickle.loads(keep.read_bytes()) if keep is not None and keep.is_file() else {}
    for held, cases in data.items():
        wanted = sorted({p for kind in pairs(cases).values() for p in kind})
        if held in out and f"{held}:st2" in out and set(out[held]) >= set(wanted):
            continue
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            model = held_out_aligner({n: cs for n, cs in data.items() if n != held}, Path(tmp))
            asked = [as_asked(cases[i], cases[j], f"{i}-{j}") for i, j in wanted]
            scores = evidence_scores(asked, model)
        out[held] = dict(zip(wanted, scores, strict=True))
        out[f"{held}:st2"] = model.section(2)
        if keep is not None:
            keep.write_bytes(pickle.dumps(out))
        print(f"  scored {held}: {len(wanted)} pairs in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return out


def statistic_values(scores: dict, cases: list[Case], statistic: str) -> dict[str, np.ndarray]:
    return {kind: np.array([STATISTICS[statistic](scores[p]) for p in ps]) for kind, ps in pairs(cases).items()}


def fit_decision(values: dict[str, dict[str, dict[str, np.ndarray]]], sources: list[str]) -> Decision:
    """The bar on the best sentence's score (``max``) with the best balanced accuracy on ``sources``
    (their real pairs against every unanswerable pair, each source counting the same). ``max`` by
    design: then the note answers the question exactly when one of its sentences clears the bar
    that answer sentences must clear."""
    pos = [values["max"][s]["real"] for s in sources]
    neg = [values["max"][s]["all"] for s in sources]
    return Decision("max", fit_bar(pos, neg))


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """The chance that a real pair outscores an unanswerable one (ties count half)."""
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + ties / 2)


def table(data: dict[str, list[Case]], scores: dict) -> None:
    values = {st: {s: statistic_values(scores[s], data[s], st) for s in data} for st in STATISTICS}
    print("Abstention, leave one source out (scores from an aligner without the held-out source;")
    print("decision fitted on the other sources). P/R: precision/recall of abstention.")
    print(
        f"  {'held out':11s} {'decision (fitted elsewhere)':28s} {'real':>5s} {'refused':>8s} "
        f"{'1:1 unans':>9s} {'P':>6s} {'R':>6s} {'all unans':>9s} {'R all':>6s}  AUC max / top3"
        "  median max real / unans"
    )
    totals = np.zeros(4)
    for held in data:
        decision = fit_decision(values, [s for s in data if s != held])
        v = values[decision.statistic][held]
        refused = int((v["real"] < decision.bar).sum())
        caught = int((v["one"] < decision.bar).sum())
        caught_all = int((v["all"] < decision.bar).sum())
        precision = caught / max(1, caught + refused)
        recall = caught / max(1, len(v["one"]))
        aucs = " / ".join(f"{auc(values[st][held]['real'], values[st][held]['all']):.2f}" for st in STATISTICS)
        name = f"{decision.statistic} >= {decision.bar:.3f}"
        print(
            f"  {held:11s} {name:28s} {len(v['real']):5d} {refused:4d} ({refused / len(v['real']):3.0%})"
            f" {len(v['one']):9d} {precision:6.2f} {recall:6.2f} {len(v['all']):9d} {caught_all / len(v['all']):6.2f}"
            f"  {aucs}         {np.median(v['real']):.3f} / {np.median(v['all']):.3f}"
        )
        totals += [len(v["real"]), refused, len(v["one"]), caught]
    n_real, refused, n_one, caught = totals
    print(
        f"  {'all':11s} {'':28s} {int(n_real):5d} {int(refused):4d} ({refused / n_real:3.0%})"
        f" {int(n_one):9d} {caught / max(1, caught + refused):6.2f} {caught / n_one:6.2f}"
    )


def st3_table(data: dict[str, list[Case]], scores: dict) -> None:
    """ST3 on each held-out source's real questions: the extractive answer from the held-out
    aligner's ST2 selection (as ST3 submissions build it, ranked by the ST2 score without the
    shipped BM25 blend) against one from the sentences over the abstention bar only (the best
    sentence when none clears it), and the same with the abstention sentence below the bar."""
    from bench_heldout import ST3_METRICS, st3_scores

    from ehrqa.retrieval.answerable import ABSTENTION
    from ehrqa.retrieval.extractive import extractive_answer
    from ehrqa.retrieval.relevance import LearnedRelevance

    values = {"max": {s: statistic_values(scores[s], data[s], "max") for s in data}}
    print("\nST3 of the real questions (ehrqa.score; the ST2 model and the bar never saw the held-out source)")
    print(f"  {'held out':11s} {'answer sentences':44s} " + " ".join(f"{m:>9s}" for m in ST3_METRICS) + "  words")
    for held, cases in data.items():
        if not all(c.answer for c in cases):
            continue
        bar = fit_decision(values, [s for s in data if s != held]).bar
        st2 = LearnedRelevance.from_dict(scores[f"{held}:st2"])
        systems: dict[str, dict[str, str]] = {"ST2 selection (ST3 submissions)": {}, "over the bar": {}}
        systems["over the bar, abstaining below it"] = {}
        for i, case in enumerate(cases):
            s = scores[held][(i, i)]
            order = [int(j) for j in np.argsort(-s, kind="stable")]
            selected = set(st2.select(s[None, :])[0])
            ids = [case.sentences[j].id for j in order]
            chosen = [case.sentences[j].id for j in order if j in selected]
            over = [case.sentences[j].id for j in order if s[j] >= bar] or ids[:1]
            systems["ST2 selection (ST3 submissions)"][case.id] = extractive_answer(case, chosen)[0]
            systems["over the bar"][case.id] = extractive_answer(case, over)[0]
            abstain = s.max() < bar
            systems["over the bar, abstaining below it"][case.id] = (
                ABSTENTION if abstain else extractive_answer(case, over)[0]
            )
        for name, preds in systems.items():
            metrics = st3_scores(cases, preds)
            words = np.mean([len(a.split()) for a in preds.values()])
            print(f"  {held:11s} {name:44s} " + " ".join(f"{metrics[m]:9.2f}" for m in ST3_METRICS) + f"  {words:5.1f}")


def write(data: dict[str, list[Case]], scores: dict) -> Decision:
    values = {st: {s: statistic_values(scores[s], data[s], st) for s in data} for st in STATISTICS}
    decision = fit_decision(values, list(data))
    v = {s: values[decision.statistic][s] for s in data}
    record = {
        "recipe": "python benchmarks/bench_abstain.py --write",
        "fitted_on": "held-out ST2 scores of each source (aligner fitted without it, ROBUST_FEATURES, DEFAULT_FIT)",
        "objective": "balanced accuracy (real questions kept, unanswerable pairs refused), mean over sources",
        "sources": {s: {"real": len(v[s]["real"]), "unanswerable": len(v[s]["all"])} for s in data},
        "statistic": "max: the best note sentence's ST2 evidence score",
        "unanswerable_pairs": "another case's question of the same source, no content word in common",
        "aligner_sha256": aligner_sha256(),
    }
    decision = Decision(decision.statistic, decision.bar, record)
    path = decision.save()
    print(f"wrote {path}: {decision.statistic} >= {decision.bar}")
    return decision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="refit models/abstain.json on every source")
    parser.add_argument("--scores", metavar="FILE", help="keep the computed scores in FILE; reuse it when present")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ehrqa.train.aligner import training_sources

    data = training_sources()
    scores = held_out_scores(data, Path(args.scores) if args.scores else None)
    table(data, scores)
    st3_table(data, scores)
    if args.write:
        write(data, scores)


if __name__ == "__main__":
    main()
