"""Golden numbers: the scorer's exact outputs on the bundled sample for fixed, deterministic predictions.

Each prediction set is a simple transformation of the sample's gold (or the ST1 rule baseline),
so a change that moves any official number by one bit, or changes a signature, fails here.
The model-based stand-ins (BERTScore, MEDCON) are left out: their floats depend on the machine.
"""

from __future__ import annotations

import platform
from importlib.metadata import version

import pytest

from ehrqa import __version__, build_submission, read_dataset
from ehrqa.errors import DataError
from ehrqa.score import score, score_predictions, score_submission
from ehrqa.tasks.interpret import rule_question

TEXT_METRICS = "bleu,rouge,sari"


def expected_signature(subtask: int, n: int, *parts: str) -> str:
    """The full signature the scorer writes for ``parts`` (``name:value``) on this machine."""
    head = [f"ehrqa:{__version__}", f"subtask:{subtask}", f"n:{n}"]
    tail = [f"numpy:{version('numpy')}", f"python:{platform.python_version()}"]
    return "|".join(head + list(parts) + tail)


def text_signature(subtask: int, n: int) -> str:
    sacrebleu = version("sacrebleu")
    return expected_signature(
        subtask,
        n,
        f"bleu:tfnmt-max4-nosmooth-cased-tok13a-sacrebleu{sacrebleu}",
        "rouge:rouge-score0.1.2-nostem-lsum-newline",
        f"sari:evaluate-sent-lc-tok13a-n4-src=narrative-sacrebleu{sacrebleu}",
    )


@pytest.fixture(scope="module")
def cases():
    return read_dataset()


def _predictions(cases) -> dict[str, dict]:
    """The fixed prediction sets, by name: subtask and {case_id: prediction}."""
    return {
        "st1_rule": (1, {c.id: rule_question(c.input_for(1)) for c in cases}),
        "st3_first_two_sentences": (3, {c.id: " ".join(a.text for a in c.answer_sentences[:2]) for c in cases}),
        "st3_gold": (3, {c.id: c.answer for c in cases}),
        "st2_essential_and_supplementary": (2, {c.id: list(c.essential_ids + c.supplementary_ids) for c in cases}),
        "st2_first_essential": (2, {c.id: list(c.essential_ids[:1]) for c in cases}),
        "st4_first_citation": (
            4,
            {
                c.id: [{"answer_id": a.id, "evidence_id": list(a.citations[:1])} for a in c.answer_sentences]
                for c in cases
            },
        ),
    }


GOLDEN = {
    "st1_rule": {
        "bleu": 0.0,
        "rouge1": 19.648516318900718,
        "rouge2": 2.5974025974025974,
        "rougeL": 17.213451383835785,
        "rougeLsum": 17.213451383835785,
        "sari": 36.14345832775829,
        "overall_partial": 17.213451383835785,
        "overall_partial_metrics": ["rougeLsum"],
    },
    "st3_first_two_sentences": {
        "bleu": 54.665661864702265,
        "rouge1": 76.41321939096304,
        "rouge2": 75.95678803236693,
        "rougeL": 76.41321939096304,
        "rougeLsum": 76.41321939096304,
        "sari": 84.61987187993637,
        "overall_partial": 71.89958437853389,
        "overall_partial_metrics": ["bleu", "rougeLsum", "sari"],
    },
    "st3_gold": {  # SARI < 100: narratives repeat words the answers keep fewer times (see ehrqa.score.sari)
        "bleu": 100.0,
        "rouge1": 100.0,
        "rouge2": 100.0,
        "rougeL": 100.0,
        "rougeLsum": 100.0,
        "sari": 99.4310392240104,
        "overall_partial": 99.81034640800347,
        "overall_partial_metrics": ["bleu", "rougeLsum", "sari"],
    },
    "st2_essential_and_supplementary": {
        "strict_micro_precision": 57.57575757575758,
        "strict_micro_recall": 100.0,
        "strict_micro_f1": 73.07692307692308,
        "strict_macro_precision": 57.291795506081215,
        "strict_macro_recall": 100.0,
        "strict_macro_f1": 72.70187795397878,
        "lenient_micro_precision": 100.0,
        "lenient_micro_recall": 100.0,
        "lenient_micro_f1": 100.0,
        "lenient_macro_precision": 100.0,
        "lenient_macro_recall": 100.0,
        "lenient_macro_f1": 100.0,
        "overall_score": 73.07692307692308,
    },
    "st2_first_essential": {
        "strict_micro_precision": 100.0,
        "strict_micro_recall": 18.421052631578945,
        "strict_micro_f1": 31.11111111111111,
        "strict_macro_precision": 100.0,
        "strict_macro_recall": 19.59183673469388,
        "strict_macro_f1": 32.540197897340754,
        "lenient_micro_precision": 100.0,
        "lenient_micro_recall": 18.421052631578945,
        "lenient_micro_f1": 31.11111111111111,
        "lenient_macro_precision": 100.0,
        "lenient_macro_recall": 19.59183673469388,
        "lenient_macro_f1": 32.540197897340754,
        "overall_score": 31.11111111111111,
    },
    "st4_first_citation": {
        "micro_precision": 100.0,
        "micro_recall": 56.41025641025641,
        "micro_f1": 72.1311475409836,
        "macro_precision": 100.0,
        "macro_recall": 60.40816326530612,
        "macro_f1": 74.05634048491191,
        "overall_score": 72.1311475409836,
    },
}

SIGNATURE_PARTS = {
    2: ("sets:st2-strict+lenient-bothempty1",),
    4: ("sets:st4-pairs-bothempty0",),
}


@pytest.mark.parametrize("name", list(GOLDEN))
def test_golden_scores_and_signature(cases, name):
    subtask, predictions = _predictions(cases)[name]
    metrics = TEXT_METRICS if subtask in (1, 3) else None
    got = score_predictions(subtask, predictions, cases, metrics=metrics)
    signature = got.pop("signature")
    assert got == {**GOLDEN[name], "n_cases": 14}
    if subtask in (1, 3):
        assert signature == text_signature(subtask, 14)
    else:
        assert signature == expected_signature(subtask, 14, *SIGNATURE_PARTS[subtask])


def test_golden_per_case_values(cases):
    subtask, predictions = _predictions(cases)["st4_first_citation"]
    records = score_predictions(subtask, predictions, cases, per_case=True)["per_case"]
    assert records[0] == {  # case 101: one citation each, 4 of its 5 gold links are first citations
        "case_id": "101",
        "precision": 100.0,
        "recall": 80.0,
        "f1": 88.8888888888889,  # 2PR/(P+R) on floats, then x100
        "n_predicted": 4,
        "n_gold": 5,
        "n_correct": 4,
    }
    subtask, predictions = _predictions(cases)["st3_first_two_sentences"]
    first = score_predictions(subtask, predictions, cases, metrics="bleu,sari", per_case=True)["per_case"][0]
    assert first == {"case_id": "101", "bleu": 33.2018661414964, "sari": 77.94557247216578}


@pytest.mark.parametrize("name", list(GOLDEN))
def test_in_process_scoring_equals_scoring_the_built_submission(cases, name):
    subtask, predictions = _predictions(cases)[name]
    metrics = TEXT_METRICS if subtask in (1, 3) else None
    entries = build_submission(subtask, predictions, cases)
    assert score_predictions(subtask, predictions, cases, metrics=metrics) == score_submission(
        subtask, entries, cases, metrics=metrics
    )
    in_process = score_predictions(subtask, predictions, cases, metrics=metrics, bootstrap=20, seed=1, per_case=True)
    result = score(subtask, entries, cases, metrics=metrics, bootstrap=20, seed=1)
    assert in_process["per_case"] == result.per_case
    assert in_process["ci95"] == result.ci


def test_in_process_scoring_applies_the_official_word_limit(cases):
    long = {c.id: c.answer + " " + c.narrative for c in cases}  # well over 75 words: truncated like a submission
    assert score_predictions(3, long, cases, metrics="rouge") == score_submission(
        3, build_submission(3, long, cases), cases, metrics="rouge"
    )


def test_in_process_scoring_needs_every_case(cases):
    predictions = {c.id: list(c.essential_ids) for c in cases[1:]}
    with pytest.raises(DataError, match=f"no prediction for case\\(s\\) {cases[0].id}"):
        score_predictions(2, predictions, cases)
