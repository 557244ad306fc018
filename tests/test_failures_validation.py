"""``ehrqa validate`` and ``ehrqa score`` say what is wrong with a dataset or submission, as subprocesses.

Each bad file gives exit 2 and one line naming the file, case and field that is wrong (the XML
when the XML lacks something, the key when the key does); gold that test releases omit is fine
to read and refused only where a subtask is scored on it.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from ehrqa import read_xml, write_key, write_xml
from helpers import make_case, make_cases
from test_failures_cli import assert_one_line_error, run_ehrqa

XML, KEY = "archehr-qa.xml", "archehr-qa_key.json"


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "data"
    write_xml(make_cases(), d / XML)
    write_key(make_cases(), d / KEY)
    return d


def _edit_key(data_dir: Path, edit) -> None:
    key = json.loads((data_dir / KEY).read_text())
    edit(key)
    (data_dir / KEY).write_text(json.dumps(key))


def _edit_xml(data_dir: Path, old: str, new: str) -> None:
    text = (data_dir / XML).read_text()
    assert old in text, old
    (data_dir / XML).write_text(text.replace(old, new, 1))


# ---------------------------------------------------------------- the right id, the right file


def test_relevance_naming_sentence_99_is_reported_as_99(data_dir):
    # case 7 has sentences 1-4: the bad label is the last one, after four good ones
    _edit_key(data_dir, lambda key: key[0]["answers"].append({"sentence_id": "99", "relevance": "essential"}))
    assert_one_line_error(run_ehrqa("validate", "--data", data_dir), KEY, "case 7", "'99'")


def test_citation_of_sentence_99_is_reported_as_99(data_dir):
    _edit_key(data_dir, lambda key: key[0]["clinician_answer_sentences"][1].update(citations=["2", "99"]))
    line = assert_one_line_error(run_ehrqa("validate", "--data", data_dir), KEY, "case 7", "answer sentence 2", "'99'")
    assert "'2'" not in line


def test_case_without_note_sentences_is_an_xml_error(data_dir):
    xml = (data_dir / XML).read_text()
    start, end = xml.index("<note_excerpt_sentences>"), xml.index("</note_excerpt_sentences>")
    (data_dir / XML).write_text(xml[:start] + xml[end + len("</note_excerpt_sentences>") :])
    line = assert_one_line_error(run_ehrqa("validate", "--data", data_dir), "case 7", "<note_excerpt_sentences>")
    assert line.startswith(f"ehrqa: error: {XML}:")


def test_key_alone_says_the_xml_is_needed(data_dir, tmp_path):
    line = assert_one_line_error(run_ehrqa("validate", "--key", data_dir / KEY), KEY, XML, "--xml")
    assert "None" not in line
    key_only = tmp_path / "key_only"
    key_only.mkdir()
    (key_only / KEY).write_bytes((data_dir / KEY).read_bytes())
    assert_one_line_error(run_ehrqa("show", "--data", key_only), str(key_only), f"no {XML}")


# ---------------------------------------------------------------- what was not checked before


@pytest.mark.parametrize(
    "old,new,fragments",
    [
        ('length="38">\nSentence 3 of the note, with ° and µg.\n', 'length="38">\n', ["sentence 3", "empty"]),
        (
            '<sentence id="2" paragraph_id="1" start_char_index="39"',
            '<sentence id="2" paragraph_id="1" start_char_index="-5"',
            ["sentence 2", "start_char_index", "negative"],
        ),
        (
            '<sentence id="2" paragraph_id="1" start_char_index="39"',
            '<sentence id="2" paragraph_id="1" start_char_index="12"',
            ["sentence 2", "start_char_index 12", "does not point"],
        ),
        (
            '<sentence id="2" paragraph_id="1" start_char_index="39" length="38">',
            '<sentence id="2" paragraph_id="1" start_char_index="39" length="30">',
            ["sentence 2", "length is 30", "38 characters"],
        ),
        (
            "Sentence 3 of the note, with ° and µg.\n            </sentence>",
            "Sentence 3 of the chart, with ° and µg.\n            </sentence>",
            ["sentence 3", "not in <note_excerpt>"],
        ),
        (
            '<phrase id="0" start_char_index="40">',
            '<phrase id="0" start_char_index="-1">',
            ["phrase 0", "start_char_index", "negative"],
        ),
        (
            '<phrase id="0" start_char_index="40">',
            '<phrase id="0" start_char_index="3">',
            ["phrase 0", "start_char_index 3", "does not point"],
        ),
        (
            '<phrase id="0" start_char_index="40">',
            '<phrase id="0" start_char_index="4000">',
            ["phrase 0", "start_char_index 4000"],
        ),
    ],
    ids=[
        "empty sentence",
        "negative sentence offset",
        "misplaced sentence",
        "wrong sentence length",
        "sentence text not in the note",
        "negative phrase offset",
        "misplaced phrase",
        "phrase past end",
    ],
)
def test_bad_xml_details_are_refused(data_dir, old, new, fragments):
    _edit_xml(data_dir, old, new)
    assert_one_line_error(run_ehrqa("validate", "--data", data_dir), XML, "case 7", *fragments)


def test_phrase_offsets_survive_pretty_printing(tmp_path):
    # the offset counts in the stripped narrative; runs of whitespace may differ after re-wrapping
    case = make_case()
    phrase = replace(case.question_phrases[0], text="Why did  she\n need a stent?")
    write_xml([replace(case, question_phrases=(phrase,))], tmp_path / XML)
    assert read_xml(tmp_path / XML)[0].question_phrases[0].start == 40


def test_missing_clinician_question_is_fine_to_read_and_refused_for_st1_scoring(data_dir, tmp_path):
    xml = (data_dir / XML).read_text()  # drop case 7's question, as an ST1 test release would
    (data_dir / XML).write_text(re.sub(r"<clinician_question>.*?</clinician_question>", "", xml, count=1, flags=re.S))
    assert run_ehrqa("validate", "--data", data_dir).returncode == 0
    sub = tmp_path / "st1.json"
    sub.write_text(json.dumps([{"case_id": c, "prediction": "Why was a stent placed?"} for c in ("7", "12")]))
    assert run_ehrqa("validate", "--data", data_dir, "--submission", sub, "--subtask", "1").returncode == 0
    proc = run_ehrqa("score", "--subtask", "1", "--submission", sub, "--data", data_dir, "--metrics", "bleu")
    assert_one_line_error(proc, XML, "case 7", "<clinician_question>", "subtask 1")


# ---------------------------------------------------------------- errors caused by a missing key


def test_scoring_without_a_key_says_so(data_dir, tmp_path):
    sub = tmp_path / "st2.json"
    sub.write_text(json.dumps([{"case_id": "7", "prediction": ["1"]}, {"case_id": "12", "prediction": []}]))
    no_key = tmp_path / "no_key"
    no_key.mkdir()
    (no_key / XML).write_bytes((data_dir / XML).read_bytes())
    for subtask in ("2", "4"):
        proc = run_ehrqa("score", "--subtask", subtask, "--submission", sub, "--data", no_key)
        assert_one_line_error(proc, "key", str(no_key), KEY)
    proc = run_ehrqa("score", "--subtask", "2", "--submission", sub, "--xml", no_key / XML)
    assert_one_line_error(proc, "key", "--key")


def test_st4_check_without_answer_sentences_blames_the_key(data_dir, tmp_path):
    sub = tmp_path / "st4.json"
    sub.write_text(
        json.dumps([{"case_id": c, "prediction": [{"answer_id": "1", "evidence_id": []}]} for c in "7 12".split()])
    )
    proc = run_ehrqa("validate", "--xml", data_dir / XML, "--submission", sub, "--subtask", "4")
    line = assert_one_line_error(proc, "st4.json", "case 7", "clinician_answer_sentences", "key")
    assert "unknown answer_id" not in line


def test_st4_scoring_without_citations_blames_the_key(data_dir, tmp_path):
    _edit_key(data_dir, lambda key: [a.pop("citations") for a in key[1]["clinician_answer_sentences"]])
    sub = tmp_path / "st4.json"
    sub.write_text(json.dumps([{"case_id": c, "prediction": []} for c in ("7", "12")]))
    proc = run_ehrqa("score", "--subtask", "4", "--submission", sub, "--data", data_dir)
    assert_one_line_error(proc, KEY, "case 12", "citations", "subtask 4")
    # the same key is fine when only case 7 is scored
    ok = run_ehrqa("score", "--subtask", "4", "--submission", sub, "--data", data_dir, "--case-ids", "7")
    assert ok.returncode == 0, ok.stderr


# ---------------------------------------------------------------- what the scorer would truncate silently


def test_validate_warns_about_predictions_the_scorer_truncates(data_dir, tmp_path):
    entries = [
        {"case_id": "7", "prediction": " ".join(["word"] * 16)},
        {"case_id": "12", "prediction": " ".join(["word"] * 15)},
    ]
    sub = tmp_path / "st1.json"
    sub.write_text(json.dumps(entries))
    proc = run_ehrqa("validate", "--data", data_dir, "--submission", sub, "--subtask", "1")
    assert proc.returncode == 0 and proc.stdout.startswith("ok: ")
    lines = proc.stderr.splitlines()
    assert len(lines) == 2, proc.stderr
    assert "case 7" in lines[0] and "16 words" in lines[0] and "15" in lines[0]
    assert "1 of 2" in lines[1] and "15-word" in lines[1]
    assert "word word" not in proc.stderr  # counts only, never the text

    entries = [{"case_id": c, "prediction": " ".join(["word"] * 76)} for c in ("7", "12")]
    sub.write_text(json.dumps(entries))
    proc = run_ehrqa("validate", "--data", data_dir, "--submission", sub, "--subtask", "3")
    lines = proc.stderr.splitlines()
    assert proc.returncode == 0 and len(lines) == 3
    assert ["case 7" in lines[0], "case 12" in lines[1], "2 of 2" in lines[2]] == [True, True, True]
    assert all("76 words" in line for line in lines[:2]) and "75-word" in lines[2]


def test_predictions_within_the_limits_give_no_warning(data_dir, tmp_path):
    sub = tmp_path / "st3.json"
    sub.write_text(json.dumps([{"case_id": c, "prediction": " ".join(["word"] * 75)} for c in ("7", "12")]))
    proc = run_ehrqa("validate", "--data", data_dir, "--submission", sub, "--subtask", "3")
    assert proc.returncode == 0 and proc.stderr == ""
