"""``ehrqa score`` end to end on a small dataset written with the project's writers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ehrqa import build_submission, read_dataset, write_key, write_submission, write_xml
from ehrqa.cli import main
from ehrqa.score import score_submission


@pytest.fixture(scope="module")
def cases():
    return read_dataset()[:5]  # the bundled invented sample


@pytest.fixture
def data_dir(tmp_path, cases):
    write_xml(cases, tmp_path / "archehr-qa.xml")
    write_key(cases, tmp_path / "archehr-qa_key.json")
    return tmp_path


def _run(capsys, *argv) -> tuple[int, dict | None, str]:
    code = main(["score", *argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def test_st2_from_key_only_equals_api(tmp_path, data_dir, cases, capsys):
    preds = {c.id: list(c.essential_ids[:2]) + list(c.supplementary_ids[:1]) for c in cases}
    entries = build_submission(2, preds, cases)
    sub = write_submission(entries, tmp_path / "out" / "submission.json")
    code, got, _ = _run(
        capsys,
        "--subtask",
        "2",
        "--submission",
        str(sub.with_suffix(".zip")),
        "--key",
        str(data_dir / "archehr-qa_key.json"),
    )
    assert code == 0
    expected = score_submission(2, entries, cases)
    assert {k: got[k] for k in expected if k != "signature"} == {k: v for k, v in expected.items() if k != "signature"}
    assert got["strict_micro_precision"] == 66.66666666666666  # 2 of every 3 predicted ids are essential


def test_st4_case_ids_out_and_per_case(tmp_path, data_dir, cases, capsys):
    preds = {c.id: [{"answer_id": a.id, "evidence_id": list(a.citations)} for a in c.answer_sentences] for c in cases}
    sub = write_submission(build_submission(4, preds, cases), tmp_path / "s4.json", zip_too=False)
    ids = [cases[0].id, cases[2].id]
    out, per_case = tmp_path / "res.json", tmp_path / "pc.csv"
    code, got, _ = _run(
        capsys,
        "--subtask",
        "4",
        "--submission",
        str(sub),
        "--data",
        str(data_dir),
        "--case-ids",
        ids[0],
        ids[1],
        "--out",
        str(out),
        "--per-case",
        str(per_case),
    )
    assert code == 0
    assert got["micro_f1"] == got["macro_f1"] == got["overall_score"] == 100.0
    assert got["n_cases"] == 2
    assert json.loads(out.read_text()) == got
    lines = per_case.read_text().splitlines()
    assert lines[0].startswith("case_id,precision,recall,f1") and [ln.split(",")[0] for ln in lines[1:]] == ids


def test_st3_text_metrics_and_range_syntax(tmp_path, data_dir, cases, capsys):
    preds = {c.id: c.answer_sentences[0].text for c in cases}
    sub = write_submission(build_submission(3, preds, cases), tmp_path / "s3.json")
    first = int(cases[0].id)
    code, got, _ = _run(
        capsys,
        "--subtask",
        "3",
        "--submission",
        str(sub),
        "--data",
        str(data_dir),
        "--metrics",
        "bleu,rouge,sari",
        "--case-ids",
        f"{first}-{first + 2}",
        "--per-case",
        str(tmp_path / "pc.jsonl"),
    )
    assert code == 0
    assert got["n_cases"] == 3
    assert {"bleu", "rouge1", "rouge2", "rougeL", "rougeLsum", "sari", "overall_partial"} <= set(got)
    assert "overall_score" not in got and "bertscore" not in got
    records = [json.loads(line) for line in (tmp_path / "pc.jsonl").read_text().splitlines()]
    assert [r["case_id"] for r in records] == [str(first + i) for i in range(3)]
    assert got["bleu"] == pytest.approx(sum(r["bleu"] for r in records) / 3, rel=1e-12)


def test_st3_needs_xml(tmp_path, data_dir, cases, capsys):
    sub = write_submission(build_submission(3, {c.id: "An answer." for c in cases}, cases), tmp_path / "s.json")
    key = str(data_dir / "archehr-qa_key.json")
    code, _, err = _run(capsys, "--subtask", "3", "--submission", str(sub), "--key", key, "--metrics", "bleu")
    assert code == 2 and "xml" in err.lower()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e[0].update(case_id=int(e[0]["case_id"])), "must be a string"),
        (lambda e: e.pop(), "missing case ids"),
        (lambda e: e.append(dict(e[0])), "duplicate"),
        (lambda e: e[1].update(prediction=["no-such-id"]), "unknown sentence id"),
    ],
)
def test_invalid_submission_exits_2_with_one_message(tmp_path, data_dir, cases, capsys, mutate, message):
    entries = build_submission(2, {c.id: [] for c in cases}, cases)
    mutate(entries)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(entries))
    code, _, err = _run(capsys, "--subtask", "2", "--submission", str(path), "--data", str(data_dir))
    assert code == 2
    assert message in err and err.count("\n") == 1


def test_bad_metric_list_exits_2(tmp_path, data_dir, capsys):
    code, _, err = _run(
        capsys,
        "--subtask",
        "3",
        "--submission",
        str(tmp_path / "x.json"),
        "--data",
        str(data_dir),
        "--metrics",
        "bleu,cider",
    )
    assert code == 2 and "cider" in err
    code, _, err = _run(
        capsys, "--subtask", "2", "--submission", str(tmp_path / "x.json"), "--data", str(data_dir), "--metrics", "bleu"
    )
    assert code == 2 and "subtasks 1 and 3" in err


def test_bootstrap_flag_adds_intervals(tmp_path, data_dir, cases, capsys):
    preds = {c.id: list(c.essential_ids[:1]) + list(c.supplementary_ids[:2]) for c in cases}
    sub = write_submission(build_submission(2, preds, cases), tmp_path / "s2.json")
    code, got, _ = _run(
        capsys, "--subtask", "2", "--submission", str(sub), "--data", str(data_dir), "--bootstrap", "100", "--seed", "7"
    )
    assert code == 0
    lo, hi = got["ci95"]["overall_score"]
    assert lo <= got["overall_score"] <= hi
    assert "bootstrap:100x-seed7" in got["signature"]


def test_score_starts_without_heavy_imports(tmp_path, data_dir, cases):
    sub = write_submission(build_submission(3, {c.id: "An answer here." for c in cases}, cases), tmp_path / "s.json")
    code = (
        "import sys; from ehrqa.cli import main;"
        "main(['score', '--subtask', '3', '--metrics', 'bleu,rouge,sari', '--submission', sys.argv[1], "
        "'--data', sys.argv[2]]);"
        "heavy = [m for m in ('torch', 'transformers', 'nltk', 'sklearn') if m in sys.modules];"
        "print('HEAVY', heavy)"
    )
    run = subprocess.run([sys.executable, "-c", code, str(sub), str(data_dir)], capture_output=True, text=True)
    assert "HEAVY []" in run.stdout, run.stdout + run.stderr


def test_metrics_help_names_every_registered_metric(capsys):
    from ehrqa.score import METRICS

    with pytest.raises(SystemExit):
        main(["score", "--help"])
    listed = capsys.readouterr().out.split("comma-separated from", 1)[1].split()[0]
    assert sorted(listed.split(",")) == sorted(METRICS)
