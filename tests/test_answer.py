"""``ehrqa answer`` / ``ehrqa.answer``: cited answers from invented plain-text notes, and its one-line errors.

The notes in ``tests/data/notes/`` are invented for these tests (no patient data). Each question
asks about one thing the note states in identifiable sentences (a drug, an antibiotic, an
endoscopy finding); the answer must cite the note sentences that say it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import ehrqa
from ehrqa.data.plain import split_note

NOTES = Path(__file__).parent / "data" / "notes"
QUESTIONS = {
    "afib_metoprolol.txt": ("What dose of metoprolol was she started on?", "metoprolol"),
    "pneumonia_levofloxacin.txt": ("Which antibiotic was he treated with for his pneumonia?", "levofloxacin"),
    "gi_bleed_endoscopy.txt": ("What did the upper endoscopy show?", "endoscopy"),
}


@pytest.fixture(scope="module")
def answers() -> dict:
    return {
        name: ehrqa.answer((NOTES / name).read_text(encoding="utf-8"), question)
        for name, (question, _) in QUESTIONS.items()
    }


def _cited_texts(result) -> list[str]:
    """The cited note sentences' texts, each on one line (a note sentence keeps the note's line breaks)."""
    return [" ".join(c.text.split()) for s in result.sentences for c in s.citations]


@pytest.mark.model
@pytest.mark.parametrize("name", list(QUESTIONS))
def test_every_answer_sentence_is_cited_with_real_note_sentences(answers, name):
    result = answers[name]
    note = {s.id: s.text for s in split_note((NOTES / name).read_text(encoding="utf-8"))}
    assert [s.id for s in result.note] == list(note)  # the numbered note is the plain splitter's
    assert result.text.strip() and result.sentences
    assert len(result.text.split()) <= 75
    assert set(result.evidence) <= set(note)
    for sentence in result.sentences:
        assert sentence.text.strip()
        assert sentence.citations, f"{name}: answer sentence {sentence.id} has no citation"
        for citation in sentence.citations:
            assert note[citation.id] == citation.text  # id and text agree with the numbered note
        ids = [int(c.id) for c in sentence.citations]
        assert ids == sorted(set(ids))  # once each, in note order


@pytest.mark.model
def test_the_drug_asked_about_is_cited(answers):
    result = answers["afib_metoprolol.txt"]
    cited = _cited_texts(result)
    assert any("Metoprolol tartrate 25 mg" in t and "started" in t for t in cited)
    # an answer sentence about metoprolol cites a note sentence about metoprolol
    about = [s for s in result.sentences if "etoprolol" in s.text]
    assert about and all(any("etoprolol" in c.text for c in s.citations) for s in about)


@pytest.mark.model
def test_the_antibiotic_asked_about_is_cited(answers):
    result = answers["pneumonia_levofloxacin.txt"]
    assert any("treated with levofloxacin" in t for t in _cited_texts(result))
    about = [s for s in result.sentences if "levofloxacin" in s.text.lower()]
    assert about and all(any("levofloxacin" in c.text.lower() for c in s.citations) for s in about)


@pytest.mark.model
def test_the_endoscopy_finding_is_cited(answers):
    result = answers["gi_bleed_endoscopy.txt"]
    assert any("Upper endoscopy" in t and "ulcer in the duodenal bulb" in t for t in _cited_texts(result))
    assert "ulcer" in result.text


@pytest.mark.model
def test_text_output_marks_each_sentence_and_lists_the_cited_note_sentences(answers):
    result = answers["pneumonia_levofloxacin.txt"]
    text = result.format()
    for sentence in result.sentences:
        assert f"{sentence.text} [{', '.join(c.id for c in sentence.citations)}]" in text
    listed = text.split("Cited note sentences:", 1)[1]
    for sid in result.cited_ids:
        assert f"[{sid}] " in listed
    assert result.methods == {"st2": "aligner", "st3": "extractive", "st4": "aligner"}


@pytest.mark.model
def test_json_output_is_the_same_answer_as_data(capsys, answers):
    from ehrqa.cli import main

    note = NOTES / "gi_bleed_endoscopy.txt"
    question = QUESTIONS[note.name][0]
    assert main(["-q", "answer", "--note", str(note), "--question", question, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == {**answers[note.name].to_dict(), "seconds": data["seconds"]}
    assert data["question"] == question
    assert [s["id"] for s in data["note"]][:3] == ["1", "2", "3"]
    assert all(c.keys() == {"id", "text"} for s in data["sentences"] for c in s["citations"])


@pytest.mark.model
def test_out_keeps_a_run_directory_the_viewer_reads(tmp_path):
    from ehrqa.view.html import write_view

    note = (NOTES / "afib_metoprolol.txt").read_text(encoding="utf-8")
    question = QUESTIONS["afib_metoprolol.txt"][0]
    first = ehrqa.answer(note, question, out=tmp_path / "run")
    again = ehrqa.answer(note, question, out=tmp_path / "run")  # answered from the records
    assert again.sentences == first.sentences and again.evidence == first.evidence
    assert first.run_dir == str(tmp_path / "run")
    record = json.loads((tmp_path / "run" / "steps" / "st3" / "records.jsonl").read_text().splitlines()[-1])
    assert [a["citations"] for a in record["answer_sentences"]] == [
        [c.id for c in s.citations] for s in first.sentences
    ]
    page = write_view(tmp_path / "run", plots=False)
    html = page.path.read_text(encoding="utf-8")
    cited = first.sentences[0].citations[0].id
    assert page.n_cases == 1 and f'data-cites="{" ".join(c.id for c in first.sentences[0].citations)}"' in html
    assert cited
    with pytest.raises(ehrqa.DataError, match="different"):  # another note is not mixed into it
        ehrqa.answer("Aspirin 81 mg daily was continued.", question, out=tmp_path / "run")


@pytest.mark.model
def test_the_note_is_scored_once_for_the_abstention_check_and_st2(monkeypatch):
    """The abstention check and the ST2 step use one loaded shipped aligner, which remembers its
    scores: the note is scored once (asked again, not at all). A recipe naming the shipped aligner's
    directory loads another copy, which scores it again and gives the same answer; with a narrative
    the ST2 input differs from the check's, so it is scored again too."""
    from ehrqa.retrieval import aligner
    from ehrqa.runs.config import parse_recipe
    from ehrqa.tasks.base import _load_aligner

    scored = []  # the subtask of every case whose features were computed
    feature_tensors = aligner.feature_tensors

    def counted(subtask, cases, *args, **kwargs):
        scored.extend([subtask] * len(cases))
        return feature_tensors(subtask, cases, *args, **kwargs)

    def fresh():  # newly loaded shipped models, remembering nothing from earlier tests
        _load_aligner.cache_clear()
        scored.clear()

    monkeypatch.setattr(aligner, "feature_tensors", counted)
    name = "pneumonia_levofloxacin.txt"
    note, question = (NOTES / name).read_text(encoding="utf-8"), QUESTIONS[name][0]
    fresh()
    once = ehrqa.answer(note, question)
    assert scored.count(2) == 1 and once.answerable and once.evidence
    scored.clear()
    again = ehrqa.answer(note, question)
    assert scored.count(2) == 0
    assert {**once.to_dict(), "seconds": 0} == {**again.to_dict(), "seconds": 0}
    fresh()
    by_path = {"subtask": 2, "method": "aligner", "aligner": str(aligner.DEFAULT_MODEL_DIR)}
    twice = ehrqa.answer(note, question, recipe=parse_recipe({"steps": [by_path]}, "r"))
    assert scored.count(2) == 2
    assert {**once.to_dict(), "seconds": 0} == {**twice.to_dict(), "seconds": 0}
    fresh()
    told = ehrqa.answer(note, question, "My father had a bad cough. " + question)
    assert scored.count(2) == 2 and told.answerable  # the check reads the question alone, ST2 the narrative too


def test_answer_is_a_plain_function_even_after_its_module_is_imported():
    import inspect
    from unittest import mock

    import ehrqa.answering

    assert inspect.isfunction(ehrqa.answer) and ehrqa.answer is ehrqa.answering.answer
    assert list(inspect.signature(ehrqa.answer).parameters)[:2] == ["note_text", "question"]
    with mock.patch("ehrqa.answer") as patched:  # what a user's test does: the function is replaced
        ehrqa.answer("note", "question?")
    patched.assert_called_once_with("note", "question?")


def test_recipe_methods_are_used_and_default_falls_back_to_the_llm(monkeypatch):
    import ehrqa.answering as answer_module
    from ehrqa.runs.config import parse_recipe

    recipe = parse_recipe(
        {
            "backends": {"default": {"kind": "hf"}},
            "steps": [{"subtask": 2, "method": "llm"}, {"subtask": 3, "method": "llm", "evidence": "st2"}],
        },
        "r",
    )
    plan = answer_module._plan(recipe)
    assert [plan.step(n).config.method for n in ("st2", "st3", "st4")] == ["llm", "llm", "aligner"]
    assert plan.step("st3").config.evidence == "st2"
    assert answer_module._plan(None).step("st3").config.method == "extractive"


@pytest.mark.model
def test_a_written_answer_is_split_and_each_sentence_aligned_to_its_own_evidence(monkeypatch):
    """A recipe whose ST3 is a chat model: its paraphrase, cited by the ST4 aligner."""
    from ehrqa.runs.config import parse_recipe
    from ehrqa.tasks.base import Context
    from helpers import ScriptedBackend

    reply = (
        "She was started on metoprolol tartrate 25 mg twice a day for rate control of her heart. "
        "Apixaban 5 mg twice daily was begun to lower her stroke risk."
    )
    backend = ScriptedBackend([reply])
    monkeypatch.setattr(Context, "backend", lambda self, name: backend)
    note = (NOTES / "afib_metoprolol.txt").read_text(encoding="utf-8")
    recipe = parse_recipe({"backends": {"default": {"kind": "hf"}}, "steps": [{"subtask": 3, "method": "llm"}]}, "r")
    result = ehrqa.answer(note, "Which medicines was she started on?", recipe=recipe)
    assert len(backend.requests) == 1 and result.methods["st3"] == "llm"
    assert [s.text for s in result.sentences] == [
        "She was started on metoprolol tartrate 25 mg twice a day for rate control of her heart.",
        "Apixaban 5 mg twice daily was begun to lower her stroke risk.",
    ]
    first, second = ([" ".join(c.text.split()) for c in s.citations] for s in result.sentences)
    assert any("Metoprolol tartrate 25 mg p.o. b.i.d. was started" in t for t in first)
    assert not any("pixaban" in t for t in first)
    assert any("apixaban 5 mg twice daily was started" in t for t in second)
    assert not any("Thyroid" in t for t in _cited_texts(result))


# ---------------------------------------------------------------- one-line errors, exit 2


def _ehrqa(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ehrqa.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


def _one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ehrqa: error: "), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def test_a_note_without_usable_text_is_one_line(tmp_path):
    note = tmp_path / "empty.txt"
    note.write_text("\n   \n----\n* * *\n\n", encoding="utf-8")
    _one_line_error(_ehrqa("answer", "--note", str(note), "--question", "Why?"), str(note), "no usable note text")


def test_a_binary_note_is_one_line(tmp_path):
    note = tmp_path / "scan.png"
    note.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    _one_line_error(_ehrqa("answer", "--note", str(note), "--question", "Why?"), str(note), "binary file")


def test_an_empty_question_is_one_line(tmp_path):
    note = NOTES / "pneumonia_levofloxacin.txt"
    _one_line_error(_ehrqa("answer", "--note", str(note), "--question", "   "), "--question", "empty question")
    with pytest.raises(ehrqa.DataError, match="empty question"):
        ehrqa.answer(note.read_text(encoding="utf-8"), "")
