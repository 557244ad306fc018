"""``ehrqa convert``: plain notes with questions -> archehr-qa.xml that ``ehrqa validate`` accepts."""

from __future__ import annotations

import json

import pytest

from ehrqa.cli import main
from ehrqa.data.archehr import read_dataset, read_xml

NOTE_A = "HOSPITAL COURSE:\nHe was given furosemide 40 mg i.v. b.i.d. His dyspnea improved.\n\nDischarged home."
NOTE_B = "Admitted for cellulitis of the left leg. Treated with cefazolin. Seen by Dr. Lee on HD#2."


def test_jsonl_to_xml_that_validate_accepts(tmp_path, capsys):
    src = tmp_path / "notes.jsonl"
    rows = [
        {"case_id": 1, "note": NOTE_A, "question": "Why was furosemide given?", "narrative": "He was short of breath."},
        {"case_id": "b", "note": NOTE_B, "question": "Which antibiotic was used?"},
    ]
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    assert main(["convert", "--notes", str(src), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "wrote 2 cases (7 note sentences)" in out
    assert "furosemide" not in out  # counts only, never note text
    assert main(["validate", "--data", str(tmp_path / "out")]) == 0
    cases = read_xml(tmp_path / "out" / "archehr-qa.xml")
    assert [c.id for c in cases] == ["1", "b"]
    a, b = cases
    assert a.narrative == "He was short of breath."
    assert a.clinician_question == "Why was furosemide given?"
    assert [s.text for s in a.sentences] == [
        "HOSPITAL COURSE:",
        "He was given furosemide 40 mg i.v. b.i.d.",
        "His dyspnea improved.",
        "Discharged home.",
    ]
    assert [s.paragraph_id for s in a.sentences] == ["0", "0", "0", "1"]
    assert b.narrative == "Which antibiotic was used?"  # the question stands in for a missing narrative
    assert b.sentences[2].text == "Seen by Dr. Lee on HD#2."


def test_folder_of_txt_with_questions_csv(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "10.txt").write_text(NOTE_A, encoding="utf-8")
    (notes / "11.txt").write_text(NOTE_B, encoding="utf-8")
    (notes / "questions.csv").write_text(
        'case_id,question,narrative\n10,Why furosemide?,"My dad, 70, could not breathe."\n11,Which antibiotic?,\n',
        encoding="utf-8",
    )
    assert main(["convert", "--notes", str(notes), "--out", str(tmp_path / "xml")]) == 0
    cases = read_dataset(tmp_path / "xml")
    assert [(c.id, c.clinician_question, c.narrative) for c in cases] == [
        ("10", "Why furosemide?", "My dad, 70, could not breathe."),
        ("11", "Which antibiotic?", "Which antibiotic?"),
    ]
    assert len(cases[1].sentences) == 3


@pytest.mark.parametrize(
    "files, message",
    [
        ({"1.txt": NOTE_A}, "no questions.csv"),
        ({"1.txt": NOTE_A, "questions.csv": "id,question\n1,Why?\n"}, "questions.csv: no 'case_id' column"),
        ({"1.txt": NOTE_A, "questions.csv": "case_id,question\n2,Why?\n"}, "line 2: case 2: no 2.txt"),
        ({"1.txt": NOTE_A, "2.txt": NOTE_B, "questions.csv": "case_id,question\n1,Why?\n"}, "no question for 2.txt"),
        ({"1.txt": b"\x89PNG\r\n\x1a\n\x00\x00", "questions.csv": "case_id,question\n1,Why?\n"}, "1.txt: binary file"),
        ({"1.txt": "\n  \n", "questions.csv": "case_id,question\n1,Why?\n"}, "1.txt: no usable note text"),
        ({"1.txt": NOTE_A, "questions.csv": "case_id,question\n1,\n"}, "1.txt: empty question"),
    ],
)
def test_folder_errors_are_one_line(tmp_path, capsys, files, message):
    for name, content in files.items():
        p = tmp_path / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert main(["convert", "--notes", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "notes.jsonl: line 1: not valid JSON"),
        ('{"case_id": "1", "note": "x."}', "notes.jsonl: line 1: missing 'question'"),
        (
            '{"case_id": "1", "note": "x.", "question": "q?"}\n{"case_id": 1, "note": "y.", "question": "q?"}',
            "duplicate",
        ),
    ],
)
def test_jsonl_errors_are_one_line(tmp_path, capsys, line, message):
    src = tmp_path / "notes.jsonl"
    src.write_text(line + "\n", encoding="utf-8")
    assert main(["convert", "--notes", str(src), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
