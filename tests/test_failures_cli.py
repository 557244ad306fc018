"""Failure paths of the ``ehrqa`` command, each run as a real subprocess.

Every failure a user can cause must end with exit status 2 and exactly one stderr line
``ehrqa: error: ...`` naming the file, flag or case; no traceback, and no half-written or
temporary file left behind. A closed stdout ends quietly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ehrqa import write_key, write_xml
from helpers import make_cases

# Root reads every file whatever its mode: permission tests run as the user "nobody" through setpriv.
AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def run_ehrqa(*args: str, stdout=subprocess.PIPE, as_nobody: bool = False) -> subprocess.CompletedProcess:
    """``ehrqa ARGS`` in a fresh interpreter; stdout and stderr as text."""
    prefix = AS_NOBODY if as_nobody else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "ehrqa.cli", *map(str, args)],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )


def score_st2(data_dir, submission, *extra) -> subprocess.CompletedProcess:
    """``ehrqa score`` of an ST2 submission against ``data_dir``, with ``extra`` arguments."""
    return run_ehrqa("score", "--subtask", "2", "--submission", submission, "--data", data_dir, *extra)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2, one stderr line in the house style holding every fragment (any case); returns the line."""
    err = proc.stderr
    assert proc.returncode == 2, (proc.returncode, err)
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ehrqa: error: "), err
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), (fragment, lines[0])
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    """Temporary or hidden files a failed or finished write must not leave behind."""
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name.startswith("."))


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "data"
    write_xml(make_cases(), d / "archehr-qa.xml")
    write_key(make_cases(), d / "archehr-qa_key.json")
    return d


@pytest.fixture
def st2_submission(tmp_path) -> Path:
    path = tmp_path / "st2.json"
    path.write_text(json.dumps([{"case_id": "7", "prediction": ["1"]}, {"case_id": "12", "prediction": []}]))
    return path


# ---------------------------------------------------------------- one error style


def test_unknown_case_in_show_is_a_one_line_error(data_dir):
    line = assert_one_line_error(run_ehrqa("show", "--data", data_dir, "999"), "'999'", "7, 12")
    assert not line.startswith("ehrqa: error: ehrqa show")


def test_submission_without_subtask_and_subtask_without_submission(data_dir, st2_submission):
    assert_one_line_error(run_ehrqa("validate", "--data", data_dir, "--submission", st2_submission), "--subtask")
    assert_one_line_error(run_ehrqa("validate", "--data", data_dir, "--subtask", "2"), "--submission")


def test_older_system_exit_messages_get_the_house_style():
    # A command that still ends with SystemExit("ehrqa cmd: message") says it the same way as DataError.
    code = (
        "import sys, ehrqa.commands.show as show; from ehrqa.cli import main\n"
        "def run(args):\n    raise SystemExit('ehrqa show: --frobnicate needs a value')\n"
        "show.run = run\nsys.exit(main(['show']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert assert_one_line_error(proc) == "ehrqa: error: --frobnicate needs a value"


def test_usage_errors_keep_argparse_status_2_in_one_line():
    proc = run_ehrqa("score", "--subtask", "9", "--submission", "x.json")
    line = assert_one_line_error(proc)
    assert "invalid choice: 9" in line and line.endswith("(see ehrqa score --help)")


def test_verbosity_flags_work_after_the_command_name(data_dir, tmp_path):
    long_question = " ".join(["word"] * 20) + "?"
    sub = tmp_path / "st1.json"
    sub.write_text(json.dumps([{"case_id": c, "prediction": long_question} for c in ("7", "12")]))
    base = ["validate", "--data", data_dir, "--submission", sub, "--subtask", "1"]
    loud = run_ehrqa(*base)
    assert loud.returncode == 0 and "case 7" in loud.stderr  # the over-limit warning is there ...
    for args in (["-q", *base], [*base, "-q"], [base[0], "-q", *base[1:]]):
        quiet = run_ehrqa(*args)
        assert quiet.returncode == 0 and quiet.stderr == "", args  # ... and -q hides it, wherever it stands
        assert quiet.stdout.startswith("ok: ")
    assert run_ehrqa("validate", "--data", data_dir, "-v").returncode == 0


# ---------------------------------------------------------------- a closed stdout


def _with_closed_stdout(*args: str) -> subprocess.CompletedProcess:
    """Run with stdout a pipe whose reader is already gone, as in ``ehrqa show 7 | head -0``."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return run_ehrqa(*args, stdout=write_end)
    finally:
        os.close(write_end)


def test_closed_stdout_ends_quietly(data_dir, st2_submission, tmp_path):
    for args in (["show", "--data", data_dir, "7"], ["show", "--data", data_dir], ["validate", "--data", data_dir]):
        proc = _with_closed_stdout(*args)
        assert proc.stderr == "" and proc.returncode == 141, (args, proc.stderr)
    out = tmp_path / "scores" / "st2.json"
    proc = _with_closed_stdout(
        "score", "--subtask", "2", "--submission", st2_submission, "--data", data_dir, "--out", out
    )
    assert proc.stderr == "" and proc.returncode == 141
    assert json.loads(out.read_text())["strict_micro_f1"] == 40.0  # the file was still written in full


# ---------------------------------------------------------------- files and paths


def test_out_that_is_a_directory_is_refused_before_scoring(data_dir, st2_submission, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    for flag in ("--out", "--per-case"):
        proc = score_st2(data_dir, st2_submission, flag, folder)
        assert_one_line_error(proc, flag, str(folder), "is a directory")
    assert list(folder.iterdir()) == [] and leftovers(tmp_path) == []


def test_out_below_a_file_is_refused(data_dir, st2_submission, tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    proc = score_st2(data_dir, st2_submission, "--per-case", blocker / "per_case.csv")
    assert_one_line_error(proc, "--per-case", "notes.txt", "is a file")
    assert blocker.read_text() == "a file, not a folder" and leftovers(tmp_path) == []


def test_score_writes_complete_files_and_no_temporaries(data_dir, st2_submission, tmp_path):
    out, per_case = tmp_path / "o" / "score.json", tmp_path / "o" / "per_case.csv"
    proc = score_st2(data_dir, st2_submission, "--out", out, "--per-case", per_case)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text()) == json.loads(proc.stdout)
    rows = per_case.read_text().splitlines()
    assert rows[0].startswith("case_id,") and [r.split(",")[0] for r in rows[1:]] == ["7", "12"]
    assert leftovers(tmp_path) == []


def test_data_or_submission_that_is_a_directory(data_dir, tmp_path):
    assert_one_line_error(run_ehrqa("validate", "--xml", data_dir), str(data_dir), "is a directory")
    sub = tmp_path / "submission.json"
    sub.mkdir()
    proc = run_ehrqa("validate", "--data", data_dir, "--submission", sub, "--subtask", "2")
    assert_one_line_error(proc, "submission.json", "is a directory")


def test_unexpected_os_errors_become_one_line(tmp_path):
    # A file error that no command anticipated still reaches the user as one line naming the path.
    missing = tmp_path / "no" / "such" / "folder" / "x.txt"
    code = (
        "import sys, ehrqa.commands.show as show; from ehrqa.cli import main\n"
        f"show.run = lambda args: open({str(missing)!r}, 'w')\n"
        "sys.exit(main(['show']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert_one_line_error(proc, str(missing), "no such file or directory")
    full = "import sys, ehrqa.commands.show as show; from ehrqa.cli import main\n"
    full += "show.run = lambda args: open('/dev/full', 'w').write('x' * 9000)\n"  # more than one buffer
    full += "sys.exit(main(['show']))"
    if Path("/dev/full").exists():
        proc = subprocess.run([sys.executable, "-c", full], capture_output=True, text=True, timeout=120)
        assert_one_line_error(proc, "no space left on device")


# ---------------------------------------------------------------- permissions (as an unprivileged user)


@pytest.fixture
def shared_dir():
    """A folder an unprivileged user can reach (pytest's tmp_path is private to its owner)."""
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: permissions cannot be taken away")
        probe = subprocess.run([*AS_NOBODY, sys.executable, "-c", "import ehrqa.cli"], capture_output=True)
        if probe.returncode != 0:
            pytest.skip("the user nobody cannot run this virtual environment")
    folder = Path(tempfile.mkdtemp(prefix="ehrqa-perm-"))
    folder.chmod(0o755)
    yield folder
    for p in [folder, *folder.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    shutil.rmtree(folder)


def _as_user(*args) -> subprocess.CompletedProcess:
    return run_ehrqa(*args, as_nobody=os.geteuid() == 0)


def test_unreadable_files_and_directories(shared_dir):
    data = shared_dir / "data"
    write_xml(make_cases(), data / "archehr-qa.xml")
    write_key(make_cases(), data / "archehr-qa_key.json")
    (data / "archehr-qa.xml").chmod(0o000)
    assert_one_line_error(_as_user("validate", "--data", data), "archehr-qa.xml", "permission denied")
    (data / "archehr-qa.xml").chmod(0o644)
    (data / "archehr-qa_key.json").chmod(0o000)
    assert_one_line_error(_as_user("show", "--data", data, "7"), "archehr-qa_key.json", "permission denied")
    (data / "archehr-qa_key.json").chmod(0o644)
    data.chmod(0o000)
    assert_one_line_error(_as_user("validate", "--data", data), str(data), "cannot read the directory")


def test_unwritable_out_and_per_case(shared_dir, st2_submission):
    data = shared_dir / "data"
    write_xml(make_cases(), data / "archehr-qa.xml")
    write_key(make_cases(), data / "archehr-qa_key.json")
    sub = shared_dir / "st2.json"
    sub.write_text(st2_submission.read_text())
    locked = shared_dir / "locked"
    locked.mkdir(mode=0o555)
    locked.chmod(0o555)
    for flag, name in (("--out", "score.json"), ("--per-case", "per_case.jsonl")):
        proc = _as_user("score", "--subtask", "2", "--submission", sub, "--data", data, flag, locked / name)
        assert_one_line_error(proc, flag, str(locked / name), "permission denied")
    assert list(locked.iterdir()) == []
