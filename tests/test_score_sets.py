"""ST2 / ST4 scoring: the official set arithmetic, empty-case rules and loading rules."""

from __future__ import annotations

import numpy as np
import pytest

from ehrqa.data.case import AnswerSentence, Case, NoteSentence
from ehrqa.errors import DataError
from ehrqa.score import score_submission


def _case(cid: str, n: int, essential=(), supplementary=(), answers=None) -> Case:
    ids = [str(i) for i in range(1, n + 1)]
    relevance = tuple(
        (s, "essential" if s in essential else "supplementary" if s in supplementary else "not-relevant") for s in ids
    )
    answer_sentences = None
    if answers is not None:
        answer_sentences = tuple(AnswerSentence(aid, f"Answer sentence {aid}.", tuple(c)) for aid, c in answers)
    return Case(
        id=cid,
        narrative="Why?",
        sentences=tuple(NoteSentence(s, f"Note sentence {s}.") for s in ids),
        relevance=relevance,
        answer="An answer.",
        answer_sentences=answer_sentences,
    )


def _st2(preds: dict[str, list[str]]) -> list[dict]:
    return [{"case_id": cid, "prediction": p} for cid, p in preds.items()]


@pytest.fixture
def st2_cases():
    return [
        _case("1", 5, essential={"1", "2"}, supplementary={"3"}),  # P={1,2,3}: lenient drops 3
        _case("2", 3),  # no essential sentence, nothing predicted: both empty
        _case("3", 3),  # no essential sentence, one predicted
        _case("4", 6, essential={"5"}),  # one essential, nothing predicted
    ]


def test_st2_strict_and_lenient_by_hand(st2_cases):
    got = score_submission(2, _st2({"1": ["1", "2", "3"], "2": [], "3": ["1"], "4": []}), st2_cases)
    # strict per case: (2/3, 1, 0.8), (1, 1, 1) both empty, (0, 0, 0), (0, 0, 0)
    f_case1 = 2 * (2 / 3) * 1.0 / (2 / 3 + 1.0)
    assert got["strict_macro_precision"] == np.mean([2 / 3, 1.0, 0.0, 0.0]) * 100
    assert got["strict_macro_recall"] == np.mean([1.0, 1.0, 0.0, 0.0]) * 100
    assert got["strict_macro_f1"] == np.mean([f_case1, 1.0, 0.0, 0.0]) * 100
    # strict micro: TP 2, |P| 3+0+1+0 = 4, |E| 2+0+0+1 = 3 (empty cases add nothing)
    assert got["strict_micro_precision"] == 50.0
    assert got["strict_micro_recall"] == 66.66666666666666  # 2/3, scaled after dividing
    assert got["strict_micro_f1"] == 2 * 0.5 * (2 / 3) / (0.5 + 2 / 3) * 100
    # lenient ignores the supplementary prediction: case 1 becomes perfect; |P| = 2+0+1+0
    assert got["lenient_macro_precision"] == np.mean([1.0, 1.0, 0.0, 0.0]) * 100
    assert got["lenient_micro_precision"] == 66.66666666666666
    assert got["lenient_micro_recall"] == 66.66666666666666
    assert got["overall_score"] == got["strict_micro_f1"]
    assert set(got) >= {
        f"{m}_{k}_{n}" for m in ("strict", "lenient") for k in ("micro", "macro") for n in ("precision", "recall", "f1")
    }


def test_st2_supplementary_is_not_added_to_gold():
    cases = [_case("1", 4, essential={"1"}, supplementary={"2"})]
    got = score_submission(2, _st2({"1": ["1"]}), cases)
    # predicting only the essential sentence is perfect in both modes (S is not gold)
    assert got["strict_micro_recall"] == got["lenient_micro_recall"] == 100.0
    got = score_submission(2, _st2({"1": ["2"]}), cases)
    assert got["strict_micro_precision"] == 0.0  # supplementary counts as wrong in strict
    assert got["lenient_micro_precision"] == 0.0  # lenient: P - S is empty, E is not
    assert got["lenient_macro_f1"] == 0.0


def test_st2_all_empty_is_one_micro_and_macro():
    got = score_submission(2, _st2({"1": [], "2": []}), [_case("1", 2), _case("2", 2)])
    assert all(v == 100.0 for k, v in got.items() if isinstance(v, float))


def test_st2_duplicate_ids_in_prediction_count_once():
    cases = [_case("1", 4, essential={"1", "2"})]
    once = score_submission(2, _st2({"1": ["1"]}), cases)
    twice = score_submission(2, _st2({"1": ["1", "1"]}), cases)
    assert once == twice
    assert once["strict_micro_precision"] == 100.0 and once["strict_micro_recall"] == 50.0


def test_st2_micro_f1_float_not_rounded():
    # 3 of 5 predicted are essential, all 3 essential found: P = 0.6, R = 1 -> 2PR/(P+R) = 1.2/1.6
    cases = [_case("1", 8, essential={"1", "2", "3"})]
    got = score_submission(2, _st2({"1": ["1", "2", "3", "6", "7"]}), cases)
    assert got["strict_micro_f1"] == 74.99999999999999


def _links(pairs: dict[str, list[str]]) -> list[dict]:
    return [{"answer_id": a, "evidence_id": e} for a, e in pairs.items()]


def test_st4_micro_macro_and_no_both_empty_rule():
    cases = [
        _case("1", 6, answers=[("1", ["1", "2"]), ("2", ["3"])]),
        _case("2", 4, answers=[("1", []), ("2", [])]),  # no gold links
        _case("3", 4, answers=[("1", ["4"])]),
    ]
    entries = [
        {"case_id": "1", "prediction": _links({"1": ["1", "5"], "2": ["3"]})},  # 2 of 3 right, 2 of 3 gold
        {"case_id": "2", "prediction": []},  # both empty: 0 in ST4 (1 in ST2)
        {"case_id": "3", "prediction": _links({"1": ["4"]})},  # perfect
    ]
    got = score_submission(4, entries, cases)
    p1 = r1 = 2 / 3
    f1 = 2 * p1 * r1 / (p1 + r1)
    assert got["macro_precision"] == np.mean([p1, 0.0, 1.0]) * 100
    assert got["macro_recall"] == np.mean([r1, 0.0, 1.0]) * 100
    assert got["macro_f1"] == np.mean([f1, 0.0, 1.0]) * 100
    assert got["micro_precision"] == 75.0  # 3 of 4 predicted pairs
    assert got["micro_recall"] == 75.0  # 3 of 4 gold pairs
    assert got["overall_score"] == got["micro_f1"] == 75.0


def test_st4_omitted_answers_and_repeated_objects():
    cases = [_case("1", 6, answers=[("1", ["1"]), ("2", ["2", "3"]), ("3", ["4"])])]
    entries = [
        {
            "case_id": "1",
            "prediction": [
                {"answer_id": "2", "evidence_id": ["2"]},
                {"answer_id": "2", "evidence_id": ["3", "2"]},  # unioned with the first, not double counted
            ],  # answers 1 and 3 omitted: no links
        }
    ]
    got = score_submission(4, entries, cases)
    assert got["micro_precision"] == 100.0
    assert got["micro_recall"] == 50.0  # 2 of 4 gold pairs


def test_st4_everything_empty_scores_zero():
    cases = [_case("1", 3, answers=[("1", [])])]
    got = score_submission(4, [{"case_id": "1", "prediction": []}], cases)
    assert got["micro_f1"] == got["macro_f1"] == got["micro_precision"] == 0.0


def test_submission_order_is_kept_for_macro():
    cases = [_case(str(i), 5, essential={"1", "2", "3"}) for i in range(1, 8)]
    preds = {str(i): [str(j) for j in range(1, 1 + i % 5)] for i in range(1, 8)}
    forward = score_submission(2, _st2(preds), cases)
    backward = score_submission(2, _st2(dict(reversed(preds.items()))), cases)
    for key in forward:
        if isinstance(forward[key], float):
            assert forward[key] == pytest.approx(backward[key], rel=1e-12)
    # the macro value is numpy's mean over the per-case values in submission order
    per_case_p = []
    for cid in reversed(list(preds)):
        p = set(preds[cid])
        per_case_p.append(len(p & {"1", "2", "3"}) / len(p) if p else 0.0)
    assert backward["strict_macro_precision"] == np.mean(per_case_p) * 100


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"case_id": 1, "prediction": []}, {"case_id": "2", "prediction": []}], "must be a string"),
        ([{"case_id": "1", "prediction": []}], "missing case ids 2"),
        (
            [
                {"case_id": "1", "prediction": []},
                {"case_id": "2", "prediction": []},
                {"case_id": "9", "prediction": []},
            ],
            "unknown case ids 9",
        ),
        (
            [
                {"case_id": "1", "prediction": []},
                {"case_id": "1", "prediction": []},
                {"case_id": "2", "prediction": []},
            ],
            "duplicate",
        ),
        ([{"case_id": "1", "prediction": ["99"]}, {"case_id": "2", "prediction": []}], "unknown sentence id '99'"),
        ([{"case_id": "1", "prediction": [1]}, {"case_id": "2", "prediction": []}], "must be a string"),
        ([{"case_id": "1", "prediction": "1,2"}, {"case_id": "2", "prediction": []}], "must be a list"),
    ],
)
def test_st2_invalid_submissions(entries, message):
    cases = [_case("1", 3, essential={"1"}), _case("2", 3)]
    with pytest.raises(DataError, match=message):
        score_submission(2, entries, cases)


@pytest.mark.parametrize(
    ("prediction", "message"),
    [
        ([{"answer_id": "7", "evidence_id": ["1"]}], "unknown answer_id '7'"),
        ([{"answer_id": "1", "evidence_id": ["42"]}], "unknown evidence id '42'"),
        ([{"answer_id": "1", "evidence_id": [1]}], "must be a string"),
        ([{"answer_id": "1", "evidence_id": "1"}], "must be a list"),
        ([{"answer_id": "1"}], "answer_id and evidence_id"),
    ],
)
def test_st4_invalid_submissions(prediction, message):
    cases = [_case("1", 3, answers=[("1", ["1"])])]
    with pytest.raises(DataError, match=message):
        score_submission(4, [{"case_id": "1", "prediction": prediction}], cases)


def test_case_ids_select_cases_and_ignore_other_entries(st2_cases):
    entries = _st2({"1": ["1", "2"], "2": [], "3": ["1"], "4": []})
    got = score_submission(2, entries, st2_cases, case_ids=["1", "2"])
    assert got["strict_micro_f1"] == 100.0 and got["strict_macro_f1"] == 100.0
    with pytest.raises(DataError, match="not in the key: 77"):
        score_submission(2, entries, st2_cases, case_ids=["1", "77"])
    with pytest.raises(DataError, match="missing case ids 2"):
        score_submission(2, entries[:1], st2_cases, case_ids=["1", "2"])


def test_st4_needs_gold_citations():
    case = _case("1", 3, answers=[("1", ["1"])]).input_for(4)
    with pytest.raises(DataError, match="citations"):
        score_submission(4, [{"case_id": "1", "prediction": []}], [case])


def test_bootstrap_intervals_contain_the_point_estimate(st2_cases):
    entries = _st2({"1": ["1", "2", "3"], "2": [], "3": ["1"], "4": []})
    got = score_submission(2, entries, st2_cases, bootstrap=200, seed=3)
    again = score_submission(2, entries, st2_cases, bootstrap=200, seed=3)
    assert got["ci95"] == again["ci95"]  # seeded
    for key in ("strict_micro_f1", "strict_macro_precision", "lenient_micro_recall"):
        lo, hi = got["ci95"][key]
        assert 0.0 <= lo <= got[key] <= hi <= 100.0
    assert got["ci95"]["strict_macro_recall"][0] < got["ci95"]["strict_macro_recall"][1]
    assert "bootstrap:200x-seed3" in got["signature"]
