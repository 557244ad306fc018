"""The bundled sample: invented cases in the official shape with full gold for all four subtasks."""

import xml.etree.ElementTree as ET

from ehrqa import read_dataset, sample_dir, write_key, write_xml
from ehrqa.cli import main
from ehrqa.text import word_count


def test_sample_is_declared_invented():
    readme = (sample_dir() / "README.md").read_text()
    assert "invented" in readme.lower() and "no patient data" in readme.lower()


def test_sample_passes_validate(capsys):
    assert main(["validate", "--data", str(sample_dir())]) == 0
    assert "key for 14 cases (relevance, answers, citations)" in capsys.readouterr().out


def test_sample_has_full_gold_for_every_subtask():
    cases = read_dataset()
    assert len(cases) >= 12 and len({c.specialty for c in cases}) >= 6
    for c in cases:
        assert 10 <= len(c.sentences) <= 40
        assert [sid for sid, _ in c.relevance] == list(c.sentence_ids)  # every sentence labelled
        assert c.essential_ids and word_count(c.clinician_question) <= 15
        assert 50 <= word_count(c.answer) <= 75
        assert " ".join(a.text for a in c.answer_sentences) == c.answer
        assert all(a.citations is not None for a in c.answer_sentences)
    assert any(a.citations == () for c in cases for a in c.answer_sentences)  # unsupported sentences exist
    assert any(c.supplementary_ids for c in cases)


def test_sample_offsets_match_the_note_paragraphs():
    for c in read_dataset():
        paragraphs = c.note_excerpt.split("\n\n")
        by_paragraph = sorted({s.paragraph_id for s in c.sentences}, key=int)
        assert len(by_paragraph) == len(paragraphs)
        for s in c.sentences:
            paragraph = paragraphs[by_paragraph.index(s.paragraph_id)].strip("\n")
            assert paragraph[s.start : s.start + s.length] == s.text
        for p in c.question_phrases:
            assert c.narrative[p.start : p.start + len(p.text)] == p.text


def test_sample_round_trips_through_the_writer(tmp_path):
    cases = read_dataset()
    write_xml(cases, tmp_path / "archehr-qa.xml")
    write_key(cases, tmp_path / "archehr-qa_key.json")
    assert read_dataset(tmp_path) == cases
    assert (tmp_path / "archehr-qa.xml").read_text().startswith("<?xml version='1.0' encoding='UTF-8'?>")
    ET.parse(tmp_path / "archehr-qa.xml")  # well-formed for any XML consumer


def _make_sample():
    """``scripts/make_sample.py`` as a module (scripts are not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "make_sample.py"
    spec = importlib.util.spec_from_file_location("make_sample", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generator_reproduces_the_shipped_files_byte_for_byte(tmp_path):
    make_sample = _make_sample()
    assert make_sample.main(["--check"]) == 0
    assert make_sample.main(["--out", str(tmp_path)]) == 0
    for name in ("archehr-qa.xml", "archehr-qa_key.json"):
        assert (tmp_path / name).read_bytes() == (sample_dir() / name).read_bytes()
    assert make_sample.build() == read_dataset()


def test_generator_check_reports_a_changed_case(tmp_path, capsys):
    make_sample = _make_sample()
    text = make_sample.CASES_FILE.read_text(encoding="utf-8")
    edited = tmp_path / "cases.yaml"
    edited.write_text(text.replace("E trop: Troponin I was 0.42", "E trop: Troponin I was 0.43", 1), encoding="utf-8")
    assert make_sample.main(["--check", "--cases", str(edited)]) == 1
    assert "out of date: archehr-qa.xml (run" in capsys.readouterr().err  # the key did not change
