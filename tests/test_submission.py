import json
import logging
import zipfile

import pytest

from ehrqa import DataError, build_submission, check_submission, read_submission, write_submission
from helpers import make_cases

CASES = make_cases()  # case "7": sentences 1-4, case "12": sentences 0-5; answer sentences 1-2


def entries(pred7, pred12):
    return [{"case_id": "7", "prediction": pred7}, {"case_id": "12", "prediction": pred12}]


def test_build_writes_one_entry_per_case_in_case_order(tmp_path):
    subs = build_submission(2, {"12": ["0"], "7": ["1", "3"]}, CASES)
    assert subs == entries(["1", "3"], ["0"])
    path = write_submission(subs, tmp_path / "submission.json")
    assert json.loads(path.read_text()) == subs
    with zipfile.ZipFile(tmp_path / "submission.zip") as z:
        assert z.namelist() == ["submission.json"]
    assert read_submission(tmp_path / "submission.zip") == subs


def test_long_answers_are_truncated_with_a_warning(caplog):
    long = " ".join(["word"] * 80)
    with caplog.at_level(logging.WARNING):
        subs = build_submission(3, {"7": long, "12": "Short answer.\nSecond line."}, CASES)
    assert len(subs[0]["prediction"].split()) == 75
    assert subs[1]["prediction"] == "Short answer.\nSecond line."  # newlines only vanish when truncating
    assert "case 7" in caplog.text and "truncated to 75" in caplog.text


def test_questions_are_truncated_to_15_words():
    subs = build_submission(1, {"7": "a " * 20, "12": "Why?"}, CASES)
    assert subs[0]["prediction"] == " ".join(["a"] * 15)


def test_missing_prediction_is_an_error():
    with pytest.raises(DataError, match="no prediction for case 12"):
        build_submission(2, {"7": []}, CASES)


@pytest.mark.parametrize(
    "subtask,subs,fragment",
    [
        (2, entries(["1"], ["0"]) + [{"case_id": "7", "prediction": []}], "case 7: duplicate entry"),
        (2, [{"case_id": 7, "prediction": []}], "must be a string"),
        (2, entries(["1"], ["0"])[:1], "missing case ids 12"),
        (2, entries(["1"], ["0"]) + [{"case_id": "99", "prediction": []}], "unknown case ids 99"),
        (2, entries(["9"], []), "case 7: unknown sentence id '9'"),
        (2, entries([1], []), "sentence id 1 must be a string"),
        (2, entries("1", []), "must be a list"),
        (3, entries("  ", "ok"), "case 7: prediction is empty"),
        (3, entries(5, "ok"), "must be a string"),
        (4, entries([{"answer_id": "3", "evidence_id": []}], []), "unknown answer_id '3'"),
        (4, entries([{"answer_id": "1", "evidence_id": ["0"]}], []), "unknown evidence id '0'"),
        (4, entries([{"answer_id": "1"}], []), "answer_id and evidence_id"),
        (2, [{"case_id": "7"}], "case_id and prediction"),
    ],
)
def test_official_validation_rules(subtask, subs, fragment):
    with pytest.raises(DataError) as err:
        check_submission(subs, subtask, CASES)
    assert fragment in str(err.value)


def test_repeated_answer_objects_are_unioned():
    subs = entries(
        [{"answer_id": "1", "evidence_id": ["1"]}, {"answer_id": "1", "evidence_id": ["2", "1"]}],
        [],
    )
    assert check_submission(subs, 4, CASES)["7"] == {"1": ["1", "2"]}


def test_st1_st3_predictions_are_stripped_and_truncated():
    out = check_submission(entries("  An answer.\n", "w " * 100), 3, CASES)
    assert out["7"] == "An answer."
    assert out["12"] == " ".join(["w"] * 75)


def test_bad_submission_files(tmp_path):
    (tmp_path / "a.json").write_text('{"case_id": "7"}')
    with pytest.raises(DataError, match="expected a JSON list"):
        read_submission(tmp_path / "a.json")
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as z:
        z.writestr("other.json", "[]")
    with pytest.raises(DataError, match="exactly submission.json"):
        read_submission(tmp_path / "b.zip")
    (tmp_path / "c.json").write_text("")
    with pytest.raises(DataError, match="empty"):
        read_submission(tmp_path / "c.json")
