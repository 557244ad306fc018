"""Answers that abstain: ``ehrqa answer`` says the note does not answer a question it cannot answer.

The notes in ``tests/data/notes/`` are invented (no patient data). Each gets a question about
something it never mentions (a brain MRI of a pneumonia note); those abstain, while the real
questions of ``test_answer.py`` are answered with sentences whose evidence clears the same bar.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ehrqa
from ehrqa.data.plain import case_from_text
from ehrqa.retrieval.answerable import (
    ABSTENTION,
    DECISION_FILE,
    Decision,
    aligner_sha256,
    evidence_scores,
    fit_bar,
    judge,
)

NOTES = Path(__file__).parent / "data" / "notes"
UNANSWERABLE = {
    "pneumonia_levofloxacin.txt": "What did the brain MRI show?",
    "afib_metoprolol.txt": "How many weeks after her knee replacement can she drive?",
    "gi_bleed_endoscopy.txt": "What did the mammogram show, and does she need chemotherapy?",
}
ANSWERABLE = {
    "afib_metoprolol.txt": "What dose of metoprolol was she started on?",
    "pneumonia_levofloxacin.txt": "Which antibiotic was he treated with for his pneumonia?",
    "gi_bleed_endoscopy.txt": "What did the upper endoscopy show?",
}


def note(name: str) -> str:
    return (NOTES / name).read_text(encoding="utf-8")


# ---------------------------------------------------------------- the decision, without a model


def test_fit_bar_separates_the_groups_and_prefers_refusing_fewer_real_questions():
    assert fit_bar([[0.6, 0.7, 0.9]], [[0.1, 0.2, 0.3]]) == pytest.approx(0.45)  # midway in the gap
    # one answerable case overlaps: keeping it costs more than refusing it
    assert fit_bar([[0.2, 0.6, 0.7]], [[0.1, 0.3, 0.4, 0.5]]) == pytest.approx(0.55)
    # each source counts the same, however many cases it has: pooled, the large source would put
    # the bar at 0.7 and refuse every real question of the small one
    small = ([0.5, 0.55], [0.3, 0.35])
    large = ([0.8] * 50, [0.45] * 50 + [0.6] * 50)
    assert fit_bar([small[0], large[0]], [small[1], large[1]]) == pytest.approx(0.475)
    assert fit_bar([small[0] + large[0]], [small[1] + large[1]]) == pytest.approx(0.7)
    with pytest.raises(ValueError):
        fit_bar([[0.5]], [[]])


def test_judge_reads_the_statistic_and_keeps_only_sentences_that_clear_the_bar():
    case = case_from_text("1", "Alpha was given. Beta was given. Gamma was given. Delta was given.", "Why?")
    scores = np.array([0.2, 0.8, 0.1, 0.5])
    verdict = judge(case, decision=Decision("max", 0.4), scores=scores)
    assert verdict.answerable and verdict.score == pytest.approx(0.8)
    assert verdict.supported == ("2", "4")  # best first, only those at or above the bar
    mean = judge(case, decision=Decision("top3_mean", 0.6), scores=scores)
    assert not mean.answerable and mean.score == pytest.approx(0.5) and mean.supported == ()
    with pytest.raises(ValueError, match="statistic"):
        Decision("median", 0.5)


def test_the_shipped_decision_was_fitted_for_the_shipped_aligner(tmp_path):
    data = json.loads(DECISION_FILE.read_text(encoding="utf-8"))
    decision = Decision.load()
    assert 0.0 < decision.bar < 1.0
    assert data["record"]["recipe"].startswith("python benchmarks/bench_abstain.py")
    assert data["record"]["aligner_sha256"] == aligner_sha256()  # refit it when the aligner changes
    copy = Decision(decision.statistic, decision.bar, decision.record).save(tmp_path / "abstain.json")
    assert Decision.load(copy) == decision


def test_an_unreadable_decision_file_is_one_line(tmp_path):
    bad = tmp_path / "abstain.json"
    bad.write_text('{"format": "something-else", "bar": 0.5}', encoding="utf-8")
    with pytest.raises(ehrqa.DataError, match=r"abstain.json: not an ehrqa abstention decision"):
        Decision.load(bad)
    bad.write_text('{"format": "ehrqa-abstain/1", "statistic": "max"}', encoding="utf-8")
    with pytest.raises(ehrqa.DataError, match=r"abstain.json: 'bar'"):
        Decision.load(bad)
    with pytest.raises(ehrqa.DataError, match=r"missing.json: "):
        Decision.load(tmp_path / "missing.json")


# ---------------------------------------------------------------- with the shipped aligner


@pytest.fixture(scope="module")
def abstained() -> dict:
    return {name: ehrqa.answer(note(name), question) for name, question in UNANSWERABLE.items()}


@pytest.mark.parametrize("name", list(UNANSWERABLE))
def test_a_question_the_note_does_not_answer_abstains_and_cites_nothing(abstained, name):
    result = abstained[name]
    assert result.answerable is False
    assert result.text == ABSTENTION
    assert [s.text for s in result.sentences] == [ABSTENTION]
    assert not result.cited_ids and result.evidence == ()
    data = result.to_dict()
    assert data["answerable"] is False and data["evidence_score"] < data["evidence_bar"]
    assert result.format().splitlines()[:2] == ["Answer:", f"  {ABSTENTION}"]


@pytest.mark.parametrize("name", list(ANSWERABLE))
def test_a_real_question_is_answered_only_from_sentences_that_clear_the_bar(name):
    result = ehrqa.answer(note(name), ANSWERABLE[name])
    assert result.answerable is True and result.evidence_score >= result.evidence_bar
    assert result.to_dict()["answerable"] is True
    scores = evidence_scores([case_from_text("1", note(name), ANSWERABLE[name], where="note")])[0]
    by_id = {s.id: score for s, score in zip(result.note, scores, strict=True)}
    sources = [c.id for s in result.sentences for c in s.citations if c.text.split()[:3] == s.text.split()[:3]]
    assert sources  # each extractive answer sentence cites the note sentence it came from
    assert all(by_id[i] >= result.evidence_bar for i in sources)  # no padding with weaker sentences


def test_the_patient_narrative_does_not_move_the_decision():
    """The bar was fitted on questions alone; a narrative would shift the ST2 scores."""
    name = "pneumonia_levofloxacin.txt"
    narrative = (
        "My father had a bad cough and fever for a week. Which antibiotic was he treated with for his pneumonia?"
    )
    alone = ehrqa.answer(note(name), ANSWERABLE[name])
    told = ehrqa.answer(note(name), ANSWERABLE[name], narrative)
    assert told.answerable and told.evidence_score == alone.evidence_score


def test_the_command_prints_the_abstention_line_and_exits_0():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ehrqa.cli",
            "answer",
            "--note",
            str(NOTES / "pneumonia_levofloxacin.txt"),
            "--question",
            UNANSWERABLE["pneumonia_levofloxacin.txt"],
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"  {ABSTENTION}" in proc.stdout.splitlines()
    assert "Cited note sentences" not in proc.stdout and "[" not in proc.stdout


def test_json_carries_answerable_false(capsys):
    from ehrqa.cli import main

    name = "gi_bleed_endoscopy.txt"
    assert main(["-q", "answer", "--note", str(NOTES / name), "--question", UNANSWERABLE[name], "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["answerable"] is False and data["answer"] == ABSTENTION
    assert data["sentences"] == [{"id": "1", "text": ABSTENTION, "citations": []}] and data["evidence"] == []


def test_an_abstention_kept_in_a_run_directory_is_shown_by_the_viewer(tmp_path):
    from ehrqa.view.html import write_view

    name = "afib_metoprolol.txt"
    result = ehrqa.answer(note(name), UNANSWERABLE[name], out=tmp_path / "run")
    assert result.answerable is False and result.run_dir == str(tmp_path / "run")
    page = write_view(tmp_path / "run", plots=False)
    assert page.n_cases == 1 and ABSTENTION in page.path.read_text(encoding="utf-8")
