"""The HTML case viewer and its plots, on run directories written by hand from the bundled sample.

``make_run`` writes a run directory by its layout (:class:`ehrqa.runs.layout.RunLayout`: run.json, and
per step ``stN`` its records, submission and optional scores). Its predictions are made from the gold with
known mistakes, so the test knows which sentence must be a hit, a miss or a false alarm.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from ehrqa.cli import main
from ehrqa.data.archehr import read_dataset, sample_dir, write_xml
from ehrqa.data.case import AnswerSentence, Case
from ehrqa.runs.layout import RunLayout
from ehrqa.view.html import write_view
from ehrqa.view.runview import load_run_view

SAMPLE_XML = sample_dir() / "archehr-qa.xml"
SAMPLE_KEY = sample_dir() / "archehr-qa_key.json"


def st2_prediction(case: Case, perfect: bool) -> list[str]:
    """Gold essential ids; unless ``perfect``, the first is dropped and a not-relevant one added."""
    ids = list(case.essential_ids)
    if perfect:
        return ids
    wrong = [sid for sid, lab in case.relevance if lab == "not-relevant"][:1]
    return ids[1:] + wrong


def altered_answer_sentence(case: Case) -> AnswerSentence:
    """The answer sentence whose ST4 links make_run gets wrong: the first citing two or more sentences."""
    return next(a for a in case.answer_sentences if len(a.citations) >= 2)


def st4_prediction(case: Case) -> list[dict]:
    """Gold links, except that :func:`altered_answer_sentence` loses its last citation and gains a wrong one."""
    target = altered_answer_sentence(case).id
    wrong = [sid for sid, lab in case.relevance if lab == "not-relevant"][0]
    out = []
    for a in case.answer_sentences:
        ids = list(a.citations)
        if a.id == target:
            ids = ids[:-1] + [wrong]
        out.append({"answer_id": a.id, "evidence_id": ids})
    return out


def make_run(
    path: Path, *, perfect_st2: frozenset[str] = frozenset(), xml=SAMPLE_XML, key=SAMPLE_KEY, with_scores: bool = False
) -> Path:
    """A small finished run over the cases of ``xml`` (gold from ``key``), with votes for ST2 and ST4."""
    cases = read_dataset(None, xml=xml, key=SAMPLE_KEY)
    path.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": "ehrqa-run/1",
        "recipe": {"name": "hand-made", "steps": {}},
        "data": {"xml": str(Path(xml).resolve()), "key": str(Path(key).resolve()) if key else None, "name": "sample"},
        "versions": {"ehrqa": "test"},
        "prompts": {},
        "seed": 0,
        "threads": 1,
        "created": "2026-12-02T00:00:00",
    }
    (path / "run.json").write_text(json.dumps(meta), encoding="utf-8")
    records: dict[int, list[dict]] = {1: [], 2: [], 3: [], 4: []}
    for c in cases:
        base = {"case_id": c.id, "status": "ok", "seconds": 0.01, "calls": 1}
        records[1].append(base | {"prediction": " ".join(c.narrative.split()[:8])})
        pred2 = st2_prediction(c, c.id in perfect_st2)
        votes2 = {sid: (4 if sid in pred2 else 2) for sid in c.essential_ids}
        votes2 |= {sid: 3 for sid in pred2 if sid not in votes2}  # the false alarm
        records[2].append(base | {"prediction": pred2, "votes": votes2, "n_votes": 5})
        answer = [
            {"id": a.id, "text": a.text, "citations": list(a.citations[:1]), "supported": bool(a.citations)}
            for a in c.answer_sentences
        ]
        records[3].append(
            base | {"prediction": " ".join(a.text for a in c.answer_sentences), "answer_sentences": answer}
        )
        pred4 = st4_prediction(c)
        votes4 = {x["answer_id"]: {n: 5 for n in x["evidence_id"]} for x in pred4}
        records[4].append(base | {"prediction": pred4, "votes": votes4, "n_votes": 5})
    layout = RunLayout(path)
    for n, rows in records.items():
        step = f"st{n}"
        layout.records(step).parent.mkdir(parents=True, exist_ok=True)
        layout.records(step).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        layout.done(step).write_text("", encoding="utf-8")
        entries = [{"case_id": r["case_id"], "prediction": r["prediction"]} for r in rows]
        layout.submission(step).write_text(json.dumps(entries), encoding="utf-8")
        if with_scores and n in (2, 4):
            from ehrqa.score import score

            result = score(n, entries, cases)
            per_case = {r["case_id"]: {k: v for k, v in r.items() if k != "case_id"} for r in result.per_case}
            payload = {"scores": result.scores, "per_case": per_case}
            layout.scores(step).write_text(json.dumps(payload), encoding="utf-8")
    return path


def sentence_classes(page: str, case_id: str, run: str = "A") -> dict[str, str]:
    """Note sentence id -> its class attribute, inside one case's panel of one run."""
    case = page.split(f'<section class="case" id="case-{case_id}"')[1].split("</section>")[0]
    panel = case.split(f'data-run="{run}"')[1].split('<div class="answer-col">')[0]
    return dict((sid, cls) for cls, sid in re.findall(r'<li class="([^"]*)" data-sid="([^"]*)"', panel))


@pytest.fixture(scope="module")
def run_a(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs") / "a")


def test_page_is_self_contained_and_colours_st2(run_a):
    result = write_view(run_a)
    assert result.path == run_a / "view" / "index.html"
    page = result.path.read_text(encoding="utf-8")
    assert result.n_cases == 14 and result.n_bytes == len(page.encode())
    # no external request: no link/script src, every src/href is an anchor or inline data
    assert "<link" not in page and "<script src" not in page
    for url in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert url.startswith(("#", "data:image/png;base64,")), url
    case = next(c for c in read_dataset() if c.id == "101")
    classes = sentence_classes(page, "101")
    missed = case.essential_ids[0]
    false_alarm = [sid for sid, lab in case.relevance if lab == "not-relevant"][0]
    assert "st2-miss" in classes[missed]
    assert "st2-false" in classes[false_alarm]
    assert all("st2-hit" in classes[sid] for sid in case.essential_ids[1:])
    assert all("st2-" not in classes[sid] for sid in case.supplementary_ids)


def test_index_is_worst_first_with_per_case_scores(run_a):
    run = load_run_view(run_a)
    page = write_view(run_a, plots=False).path.read_text(encoding="utf-8")
    index = page.split('<table class="index')[1].split("</table>")[0]
    order = re.findall(r'<tr data-case="([^"]+)"', index)
    scores = [run.case_score(cid) for cid in order]
    assert len(order) == 14 and scores == sorted(scores)
    # ST2 per-case strict F1 of case 101 from the scorer: one miss and one false alarm
    n = len(next(c for c in run.cases if c.id == "101").essential_ids)
    assert run.subtasks[2].headline("101") == pytest.approx(100 * (n - 1) / n)
    assert run.subtasks[3].scores_source == "computed: bleu,rouge,sari"


def test_st4_links_and_votes(run_a):
    page = write_view(run_a, plots=False).path.read_text(encoding="utf-8")
    case = next(c for c in read_dataset() if c.id == "101")
    first = altered_answer_sentence(case)
    block = page.split('<section class="case" id="case-101"')[1].split('<div class="st4">')[1].split("</ol>")[0]
    item = block.split(f'data-aid="{first.id}"')[0].rsplit("<li", 1)[1] + block.split(f'data-aid="{first.id}"')[1]
    item = item.split("</li>")[0]
    assert f'data-gold="{" ".join(first.citations)}"' in item
    assert f'<span class="link missing" data-nid="{first.citations[-1]}">' in item
    assert '<span class="link wrong"' in item and '<span class="votes">5/5</span>' in item


def test_note_text_is_escaped(tmp_path):
    cases = read_dataset(None, xml=SAMPLE_XML)
    evil = '<script>alert("x")</script> & <b>bold</b>'
    first = cases[0]
    sentences = (replace(first.sentences[0], text=evil),) + first.sentences[1:]
    cases[0] = replace(first, sentences=sentences, narrative=first.narrative + " <img src=x onerror=alert(1)>")
    write_xml(cases, tmp_path / "archehr-qa.xml")
    run = make_run(tmp_path / "run", xml=tmp_path / "archehr-qa.xml")
    page = write_view(run, plots=False).path.read_text(encoding="utf-8")
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>bold" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page


def test_predictions_only_without_gold(tmp_path):
    run = make_run(tmp_path / "nogold", key=None)
    page = write_view(run, plots=False).path.read_text(encoding="utf-8")
    classes = sentence_classes(page, "101")
    assert any("st2-pred" in c for c in classes.values())
    cases_part = page.split('<main id="cases">')[1]
    assert not any(k in cases_part for k in ("st2-hit", "st2-miss", "Reference answer", "link missing"))
    assert '<span class="link pred" data-nid=' in cases_part  # ST4 links shown without their answer text
    assert load_run_view(run).case_score("101") is None


def test_two_runs_side_by_side_with_better_and_worse(tmp_path, run_a):
    run_b = make_run(tmp_path / "b", perfect_st2=frozenset({"101", "102"}), with_scores=True)
    page = write_view(run_a, run_b, tmp_path / "cmp.html", plots=False).path.read_text(encoding="utf-8")
    assert load_run_view(run_b).subtasks[2].scores_source == "run"
    assert "better on 2, worse on 0, same on 12 cases" in page
    assert 'class="panels two"' in page and 'data-run="B"' in page
    rows = dict(re.findall(r'<tr data-case="([^"]+)">.*?<td class="verdict (\w+)">', page))
    assert rows["101"] == "better" and rows["103"] == "same"
    assert "st2-miss" not in sentence_classes(page, "101", "B").values()


def test_command_writes_plots_and_says_phi(run_a, capsys):
    assert main(["view", str(run_a)]) == 0
    out = capsys.readouterr().out
    assert str(run_a / "view" / "index.html") in out and "PHI" in out
    pngs = sorted(p.name for p in (run_a / "plots").glob("*.png"))
    assert {"st2_metrics.png", "st2_threshold.png", "st3_metrics.png", "st4_per_case.png"} <= set(pngs)
    for p in pngs:
        assert (run_a / "plots" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (run_a / "view" / "index.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == len(pngs)


def test_vote_threshold_points_follow_the_votes(run_a):
    from ehrqa.view.runview import vote_threshold_points

    run = load_run_view(run_a)
    points, chosen = vote_threshold_points(run.subtasks[2], run.cases)
    assert [t for t, _, _ in points] == [1, 2, 3, 4, 5]
    # >= 1 vote: every essential sentence plus the false alarms -> recall 100
    assert points[0][2] == pytest.approx(100.0)
    # >= 5 votes: nothing predicted
    assert points[-1][1:] == (0.0, 0.0)
    assert chosen == (pytest.approx(100 * 62 / 76), pytest.approx(100 * 62 / 76))


def test_missing_run_json_is_one_line_error(tmp_path, capsys):
    assert main(["view", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no run.json" in err and "\n" not in err


@pytest.mark.model
def test_a_run_over_some_cases_shows_only_those(tmp_path):
    from ehrqa.runs.config import parse_recipe
    from ehrqa.runs.pipeline import run
    from ehrqa.view.runview import load_run_view

    cases = read_dataset()
    run(parse_recipe({"steps": [{"subtask": 1}]}, "r"), cases[:3], tmp_path / "run")
    view = load_run_view(tmp_path / "run")
    assert [c.id for c in view.cases] == [c.id for c in cases[:3]]
