"""Rough edges a new user hit: each test reproduces one and checks the fix."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from ehrqa.cli import main


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return env


def _python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``code`` run by a fresh Python (this one's path), which must exit 0."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env or _env())
    assert done.returncode == 0, done.stderr
    return done


# ---------------------------------------------------------------- output


def test_flag_errors_caught_by_argparse_are_one_line(capsys):
    assert main(["tune", "--runs", "a", "--subtask", "9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ehrqa: error: ") and "\n" not in err, err
    assert "invalid choice: 9" in err and "ehrqa tune --help" in err
    assert main(["view"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ehrqa: error: ") and "RUN_DIR" in err and "\n" not in err, err
    assert main(["nonsense-command"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ehrqa: error: ") and "\n" not in err and "usage" not in err, err


def test_quiet_prints_only_errors_and_still_writes_results(tmp_path, capsys):
    from ehrqa import sample_dir

    out = tmp_path / "mydata"
    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"case_id": "1", "note": "He had a fever. It resolved.", "question": "Why the fever?"}\n')
    assert main(["-q", "convert", "--notes", str(notes), "--out", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert (out / "archehr-qa.xml").exists()
    assert main(["-q", "view", str(_view_runs(tmp_path)[0]), "--no-plots"]) == 0
    assert capsys.readouterr().out == ""  # no "wrote ..." and no notice
    assert (tmp_path / "a" / "view" / "index.html").exists()
    # a command whose result is what it prints keeps printing it
    assert main(["-q", "show", "--data", str(sample_dir())]) == 0
    assert "101" in capsys.readouterr().out


def test_the_bitsandbytes_kernels_notice_is_filtered_precisely():
    # bitsandbytes logs this on import on CPUs with AVX512-BF16 when the optional `kernels`
    # package is absent: its own CPU code is used, so ehrqa drops exactly that record.
    code = (
        "import logging, ehrqa\n"
        "log = logging.getLogger('bitsandbytes.backends.cpu.ops')\n"
        "log.warning('Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure', 'x')\n"
        "log.warning('another bitsandbytes warning')\n"
    )
    done = _python(code)
    assert "kernels-community" not in done.stderr
    assert "another bitsandbytes warning" in done.stderr


def test_a_cross_encoder_loads_without_the_conversion_warning():
    # ehrqa builds every cross-encoder from the MiniLM sentence encoder on purpose, so
    # sentence-transformers' "Converting ... to CrossEncoder" warning told users nothing; the
    # library's other warnings still show, and its logger's level is the user's again afterwards.
    code = (
        "import logging\n"
        "from ehrqa.retrieval.cross_encoder import new_cross_encoder\n"
        "new_cross_encoder(None)\n"
        "print('level:', logging.getLogger('sentence_transformers').level)\n"
        "logging.getLogger('sentence_transformers.base.model').warning('another warning')\n"
    )
    done = _python(code)
    assert "Converting" not in done.stderr and "newly initialized" not in done.stderr, done.stderr
    assert "another warning" in done.stderr
    assert "level: 0" in done.stdout


def test_loading_the_aligner_encoder_draws_no_loading_bar():
    code = (
        "from ehrqa.retrieval.dense import load_sentence_encoder\n"
        "from transformers.utils import logging as hf_logging\n"
        "load_sentence_encoder(None)\n"
        "print('bars still on:', hf_logging.is_progress_bar_enabled())\n"
    )
    env = {k: v for k, v in _env().items() if k not in ("EHRQA_NO_PROGRESS", "TQDM_DISABLE")}
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    done = _python(code, env)
    assert "Loading weights" not in done.stderr
    assert "bars still on: True" in done.stdout  # the setting is restored for the user's own loads


# ---------------------------------------------------------------- ensemble and tune


def _dataset(directory, narrative_suffix: str = ""):
    from dataclasses import replace

    from ehrqa import write_key, write_xml
    from helpers import make_cases

    cases = [replace(c, narrative=c.narrative + narrative_suffix) for c in make_cases()]
    write_xml(cases, directory / "archehr-qa.xml")
    write_key(cases, directory / "archehr-qa_key.json")
    return directory


def _st1_run(tmp_path, data, name: str) -> str:
    run_dir = tmp_path / name
    out = tmp_path / f"{name}.json"
    argv = ["-q", "interpret", "--data", str(data), "--out", str(out), "--run-dir", str(run_dir)]
    assert main(argv) == 0
    return str(run_dir)


@pytest.mark.model
def test_ensemble_refuses_runs_made_on_different_datasets_sharing_case_ids(tmp_path, capsys):
    (tmp_path / "d1").mkdir()
    (tmp_path / "d2").mkdir()
    d1, d2 = _dataset(tmp_path / "d1"), _dataset(tmp_path / "d2", " It was my brother, not my mother.")
    a, b, c = _st1_run(tmp_path, d1, "a"), _st1_run(tmp_path, d1, "b"), _st1_run(tmp_path, d2, "c")
    capsys.readouterr()
    out = str(tmp_path / "voted.json")
    assert main(["ensemble", "--subtask", "1", "--runs", a, b, "--out", out]) == 0
    capsys.readouterr()
    assert main(["ensemble", "--subtask", "1", "--runs", a, c, "--out", str(tmp_path / "mixed.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ehrqa: error: ") and "\n" not in err
    assert "different datasets" in err and c in err and a in err
    assert not (tmp_path / "mixed.json").exists()


def test_wording_another_dataset_and_one_case(tmp_path, capsys):
    import pytest

    from ehrqa.errors import DataError
    from ehrqa.runs.rundir import RunDir

    RunDir.open(tmp_path / "run", {"recipe": {"name": "r"}, "data": {"xml_sha256": "a"}})
    with pytest.raises(DataError) as raised:
        RunDir.open(tmp_path / "run", {"recipe": {"name": "r"}, "data": {"xml_sha256": "b"}})
    assert "made with a different dataset;" in str(raised.value)
    with pytest.raises(DataError) as raised:
        RunDir.open(tmp_path / "run", {"recipe": {"name": "s"}, "data": {"xml_sha256": "b"}})
    assert "made with a different recipe and a different dataset;" in str(raised.value)

    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"case_id": "1", "note": "He had a fever.", "question": "Why the fever?"}\n')
    assert main(["convert", "--notes", str(notes), "--out", str(tmp_path / "one")]) == 0
    assert "wrote 1 case (1 note sentence) to" in capsys.readouterr().out
    assert main(["validate", "--data", str(tmp_path / "one")]) == 0
    assert capsys.readouterr().out.startswith("ok: 1 case, 1 note sentence, no key")


# ---------------------------------------------------------------- ehrqa view


def _view_runs(tmp_path):
    from test_view import make_run

    return make_run(tmp_path / "a"), make_run(tmp_path / "b", perfect_st2=frozenset({"101"}))


def test_view_out_existing_directory_leaves_nothing_and_names_out(tmp_path, capsys):
    a, _ = _view_runs(tmp_path)
    existing = tmp_path / "pages"
    existing.mkdir()
    assert main(["view", str(a), "--out", str(existing), "--no-plots"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ehrqa: error: --out {existing}: is a directory") and "\n" not in err, err
    assert ".tmp" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "pages"]
    assert list(existing.iterdir()) == []
    # the Python API says the same without naming a flag, and leaves nothing either
    import pytest

    from ehrqa.errors import DataError
    from ehrqa.view.html import write_view

    with pytest.raises(DataError) as raised:
        write_view(a, out=existing, plots=False)
    assert "--out" not in str(raised.value) and str(existing) in str(raised.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "pages"]


def test_view_of_two_runs_keeps_a_own_page_and_plots_both(tmp_path, capsys):
    a, b = _view_runs(tmp_path)
    assert main(["view", str(a)]) == 0
    own = (a / "view" / "index.html").read_bytes()
    capsys.readouterr()
    assert main(["view", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert (a / "view" / "index.html").read_bytes() == own  # A's own page untouched
    compared = a / "view-vs-b" / "index.html"
    assert str(compared) in out
    page = compared.read_text(encoding="utf-8")
    assert 'data-run="B"' in page
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", page)
    assert any(c.startswith("A ") for c in captions) and any(c.startswith("B ") for c in captions), captions
    assert (b / "plots" / "st2_threshold.png").exists()


def test_view_of_two_runs_without_a_common_case_is_one_line_error(tmp_path, capsys):
    from dataclasses import replace

    from ehrqa.data.archehr import read_dataset, write_xml
    from ehrqa.runs.layout import RunLayout
    from test_view import make_run

    a = make_run(tmp_path / "a")
    cases = [replace(c, id=str(int(c.id) + 1000)) for c in read_dataset()]
    write_xml(cases, tmp_path / "other.xml")
    other = tmp_path / "other"
    other.mkdir()
    (other / "run.json").write_text(
        json.dumps({"format": "ehrqa-run/1", "data": {"xml": str(tmp_path / "other.xml"), "name": "other"}})
    )
    layout = RunLayout(other)
    layout.records("st1").parent.mkdir(parents=True)
    records = [{"case_id": c.id, "status": "ok", "prediction": "Why?"} for c in cases]
    layout.records("st1").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(["view", str(a), str(other), "--no-plots"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no case in common" in err and "\n" not in err, err
    assert not (a / "view-vs-other").exists()


# ---------------------------------------------------------------- ehrqa tune


def _st2_run_without_votes(path):
    from ehrqa import read_dataset, sample_dir

    cases = read_dataset()
    path.mkdir()
    files = {"xml": str(sample_dir() / "archehr-qa.xml"), "key": str(sample_dir() / "archehr-qa_key.json")}
    (path / "run.json").write_text(json.dumps({"format": "ehrqa-run/1", "data_files": files}))
    (path / "steps" / "st2").mkdir(parents=True)
    records = [{"case_id": c.id, "status": "ok", "prediction": list(c.essential_ids[:1])} for c in cases]
    (path / "steps" / "st2" / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_tune_says_no_votes_were_recorded_instead_of_a_best_threshold(tmp_path, capsys):
    run = _st2_run_without_votes(tmp_path / "run")
    assert main(["tune", "--runs", run, "--subtask", "2", "--folds", "2"]) == 2
    captured = capsys.readouterr()
    assert "best" not in captured.out
    err = captured.err.strip()
    assert err.startswith("ehrqa: error: ") and "no votes recorded" in err and "\n" not in err, err


def test_tune_refuses_one_fold(tmp_path, capsys):
    run = _st2_run_without_votes(tmp_path / "run")
    assert main(["tune", "--runs", run, "--subtask", "2", "--folds", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "ehrqa: error: --folds 1: cross-validation needs at least 2 folds", err


# ---------------------------------------------------------------- failed LLM commands


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bad_server_settings_are_refused_before_anything_is_made(tmp_path):
    env = {k: v for k, v in _env().items() if k not in ("EHRQA_NO_PROGRESS", "TQDM_DISABLE")}
    base = ["generate", "--backend", "openai", "--model", "m", "--cases", "101"]
    for flags in (["--base-url", "ftp://example.org/v1"], ["--base-url", "http://127.0.0.1:9/v1", "--timeout", "0"]):
        out = tmp_path / "out" / "st3.json"
        code = "import sys; from ehrqa.cli import main; sys.exit(main(sys.argv[1:]))"
        done = subprocess.run(
            [sys.executable, "-c", code, *base, *flags, "--out", str(out)], capture_output=True, text=True, env=env
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("ehrqa: error: ") and done.stderr.count("\n") == 1, done.stderr  # no bar
        assert list(tmp_path.iterdir()) == [], flags


def test_a_failed_llm_command_leaves_no_empty_run_directory(tmp_path, capsys):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    out = tmp_path / "out" / "st3.json"
    argv = ["generate", "--backend", "openai", "--base-url", url, "--model", "m", "--retries", "0"]
    assert main([*argv, "--cases", "101", "--out", str(out)]) == 2
    assert "cannot connect" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    # the folder the user already had is kept; only what the command made goes
    kept = tmp_path / "mine"
    kept.mkdir()
    assert main([*argv, "--cases", "101", "--out", str(out), "--run-dir", str(kept / "run")]) == 2
    assert kept.is_dir() and not (kept / "run").exists()


# ---------------------------------------------------------------- the user's question is input, not gold


def test_a_converted_question_is_input_never_st1_gold(tmp_path, capsys):
    from ehrqa import read_dataset
    from ehrqa.data.plain import case_from_text
    from ehrqa.runs.layout import RunLayout
    from ehrqa.runs.pipeline import dataset_copy

    notes = tmp_path / "notes.jsonl"
    rows = [
        {
            "case_id": "1",
            "note": "He had a fever. Blood cultures grew E. coli.",
            "question": "Why was he on antibiotics?",
        },
        {"case_id": "2", "note": "She fell at home. An X-ray showed a hip fracture.", "question": "Why the surgery?"},
    ]
    notes.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = tmp_path / "mydata"
    assert main(["convert", "--notes", str(notes), "--out", str(data)]) == 0
    assert '<clinician_question source="user">' in (data / "archehr-qa.xml").read_text()
    cases = read_dataset(data)
    assert all(c.question_is_input and c.gold_question is None for c in cases)
    assert cases[0].clinician_question == "Why was he on antibiotics?"  # still the input of ST2-ST4
    # ehrqa answer --out keeps its case the same way
    copy, files = dataset_copy([case_from_text("1", "He had a fever.", "Why?")], tmp_path / "answer-run")
    assert b'source="user"' in next(b for p, b in files.items() if p.name == "archehr-qa.xml")

    capsys.readouterr()
    assert main(["show", "--data", str(data), "1"]) == 0
    shown = capsys.readouterr().out
    assert "Question (input): Why was he on antibiotics?" in shown and "Clinician question" not in shown

    submission = tmp_path / "st1.json"
    submission.write_text(json.dumps([{"case_id": c.id, "prediction": c.clinician_question} for c in cases]))
    assert main(["score", "--subtask", "1", "--submission", str(submission), "--data", str(data)]) == 2
    assert "user's input" in capsys.readouterr().err

    run = tmp_path / "run"
    assert main(["-q", "run", "--recipe", "default", "--subtasks", "1", "--data", str(data), "--out", str(run)]) == 0
    assert not RunLayout(run).scores("st1").exists()  # nothing to score ST1 against
    page = (run / "view" / "index.html").read_text(encoding="utf-8")
    assert "question (input)" in page and "clinician (gold)" not in page


def test_a_converted_dataset_gives_no_st1_examples(tmp_path):
    import pytest

    from ehrqa import sample_dir
    from ehrqa.errors import DataError
    from ehrqa.retrieval.examples import question_pool

    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"case_id": "1", "note": "He had a fever.", "question": "Why the fever?"}\n')
    assert main(["-q", "convert", "--notes", str(notes), "--out", str(tmp_path / "mydata")]) == 0
    with pytest.raises(DataError, match="no clinician questions to draw ST1 examples from"):
        question_pool(str(tmp_path / "mydata"))
    assert len(question_pool(str(sample_dir())).cases) == 14


def test_the_official_clinician_question_stays_gold():
    from ehrqa import read_dataset

    case = read_dataset()[0]
    assert not case.question_is_input and case.gold_question == case.clinician_question


# ---------------------------------------------------------------- ehrqa validate


def test_validate_warns_about_a_78_word_reference_answer(tmp_path):
    from dataclasses import replace

    from ehrqa import write_key, write_xml
    from helpers import make_cases

    cases = make_cases()
    cases[1] = replace(cases[1], answer=" ".join(["word"] * 78))
    write_xml(cases, tmp_path / "archehr-qa.xml")
    write_key(cases, tmp_path / "archehr-qa_key.json")
    code = "import sys; from ehrqa.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", code, "validate", "--data", str(tmp_path)], capture_output=True, text=True, env=_env()
    )
    assert done.returncode == 0 and done.stdout.startswith("ok: "), done.stderr
    assert "WARNING: archehr-qa_key.json: 1 of 2 reference answers are longer than the 75 words" in done.stderr
    assert "case 12 (78 words)" in done.stderr


# ---------------------------------------------------------------- ehrqa run --set


def test_a_bad_set_value_is_blamed_on_set_not_on_the_shipped_recipe(tmp_path, capsys):
    out = str(tmp_path / "run")
    for setting, fragment in (("seed=abc", "recipe.seed: expected a whole number"), ("st2.top_k=3", "unknown key")):
        assert main(["run", "--recipe", "default", "--set", setting, "--out", out]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"ehrqa: error: --set {setting}: ") and fragment in err, err
        assert "default.yaml" not in err
    assert not (tmp_path / "run").exists()
    # a broken recipe file is still named as such
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nseed: x\nsteps:\n  - {subtask: 1, method: rule}\n")
    assert main(["run", "--recipe", str(bad), "--set", "seed=1", "--out", out]) == 2
    assert f"ehrqa: error: {bad}: recipe.seed" in capsys.readouterr().err


# ---------------------------------------------------------------- API messages name parameters, the CLI flags


@pytest.mark.model
def test_api_errors_name_parameters_and_the_cli_names_flags(tmp_path, capsys):
    import pytest

    from ehrqa import read_dataset, sample_dir
    from ehrqa.errors import DataError
    from ehrqa.runs.config import load_recipe
    from ehrqa.runs.rundir import RunDir

    RunDir.open(tmp_path / "run", {"recipe": {"name": "r"}})
    with pytest.raises(DataError) as raised:
        RunDir.open(tmp_path / "run", {"recipe": {"name": "s"}})
    assert "force=True" in str(raised.value) and "--" not in str(raised.value)
    with pytest.raises(DataError) as raised:
        load_recipe("no-such-recipe")
    assert str(raised.value).startswith("recipe=no-such-recipe: ")
    with pytest.raises(DataError) as raised:
        read_dataset(key=sample_dir() / "archehr-qa_key.json")
    assert "(xml=FILE)" in str(raised.value)

    assert main(["run", "--recipe", "no-such-recipe", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.startswith("ehrqa: error: --recipe no-such-recipe: no such file")
    assert main(["show", "--key", str(sample_dir() / "archehr-qa_key.json")]) == 2
    assert "(--xml FILE)" in capsys.readouterr().err
    assert main(["-q", "run", "--recipe", "default", "--subtasks", "1", "--out", str(tmp_path / "r")]) == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "archehr-qa.xml").write_text((sample_dir() / "archehr-qa.xml").read_text().replace("My dad", "My son"))
    assert (
        main(["run", "--recipe", "default", "--subtasks", "1", "--data", str(other), "--out", str(tmp_path / "r")]) == 2
    )
    err = capsys.readouterr().err
    assert "made with a different dataset; use --out ANOTHER_DIR, or --force to start over" in err, err


def test_as_flags_rewrites_only_known_parameters():
    from ehrqa.cli import as_flags

    assert as_flags("use out=DIR or force=True") == "use --out DIR or --force"
    assert as_flags("folds=1: too few") == "--folds 1: too few"
    assert (
        as_flags("pass resume=True to continue, or a new output=DIR")
        == "pass --resume to continue, or a new --output DIR"
    )
    assert (
        as_flags('<clinician_question source="x"> timeout=3 layout=2')
        == '<clinician_question source="x"> timeout=3 layout=2'
    )


@pytest.mark.model
def test_a_page_comparing_runs_of_different_datasets_says_so(tmp_path):
    from ehrqa import sample_dir

    other = tmp_path / "other"
    other.mkdir()
    (other / "archehr-qa.xml").write_text((sample_dir() / "archehr-qa.xml").read_text().replace("My dad", "My son"))
    base = ["-q", "run", "--recipe", "default", "--subtasks", "1"]
    for name, data in (("a", sample_dir()), ("b", sample_dir()), ("c", other)):
        assert main([*base, "--data", str(data), "--out", str(tmp_path / name)]) == 0
    warning = "The two runs read different dataset files"
    assert main(["-q", "view", str(tmp_path / "a"), str(tmp_path / "b"), "--no-plots"]) == 0
    assert warning not in (tmp_path / "a" / "view-vs-b" / "index.html").read_text(encoding="utf-8")
    assert main(["-q", "view", str(tmp_path / "a"), str(tmp_path / "c"), "--no-plots"]) == 0
    assert warning in (tmp_path / "a" / "view-vs-c" / "index.html").read_text(encoding="utf-8")
