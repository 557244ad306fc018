import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ehrqa import write_key, write_xml
from ehrqa.cli import main
from helpers import make_cases


@pytest.fixture
def data_dir(tmp_path):
    write_xml(make_cases(), tmp_path / "archehr-qa.xml")
    write_key(make_cases(), tmp_path / "archehr-qa_key.json")
    return tmp_path


def test_validate_good_dataset(data_dir, capsys):
    assert main(["validate", "--data", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 2 cases, 10 note sentences, key for 2 cases (relevance, answers, citations)")


def test_validate_xml_and_key_flags(data_dir, capsys):
    assert (
        main(["validate", "--xml", str(data_dir / "archehr-qa.xml"), "--key", str(data_dir / "archehr-qa_key.json")])
        == 0
    )
    assert main(["validate", "--xml", str(data_dir / "archehr-qa.xml")]) == 0
    assert "no key" in capsys.readouterr().out


def test_validate_bad_dataset_prints_one_line_and_exits_2(data_dir, capsys):
    (data_dir / "archehr-qa.xml").write_text("<annotations><case id='7'>")
    assert main(["validate", "--data", str(data_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ehrqa: error: archehr-qa.xml: not well-formed XML")
    assert "\n" not in err and "Traceback" not in err


def test_validate_submission(data_dir, tmp_path, capsys):
    sub = tmp_path / "submission.json"
    sub.write_text(json.dumps([{"case_id": "7", "prediction": ["1"]}, {"case_id": "12", "prediction": []}]))
    assert main(["validate", "--submission", str(sub), "--subtask", "2", "--data", str(data_dir)]) == 0
    # ST2 needs only the key
    assert (
        main(["validate", "--submission", str(sub), "--subtask", "2", "--key", str(data_dir / "archehr-qa_key.json")])
        == 0
    )
    sub.write_text(json.dumps([{"case_id": "7", "prediction": ["1"]}]))
    assert main(["validate", "--submission", str(sub), "--subtask", "2", "--data", str(data_dir)]) == 2
    assert "missing case ids 12" in capsys.readouterr().err


def test_show_lists_cases_and_renders_one(data_dir, capsys):
    assert main(["show", "--data", str(data_dir)]) == 0
    listing = capsys.readouterr().out
    assert "Why was a coronary stent placed?" in listing and "12" in listing
    assert main(["show", "--data", str(data_dir), "7"]) == 0
    page = capsys.readouterr().out
    assert "E   1 Sentence 1" in page and "|1|" in page  # essential mark, citations
    assert main(["show", "--data", str(data_dir), "7", "--no-gold"]) == 0
    assert "|1|" not in capsys.readouterr().out


def test_every_command_has_help():
    from ehrqa.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"validate", "show", "demo"} <= set(sub.choices)
    for name, p in sub.choices.items():
        assert p.format_help().startswith("usage: ehrqa " + name)


def test_validate_starts_without_heavy_imports(data_dir):
    code = (
        "import sys; from ehrqa.cli import main; main(['validate', '--data', sys.argv[1]]);"
        "heavy = [m for m in ('torch', 'transformers', 'sklearn', 'sentence_transformers') if m in sys.modules];"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(data_dir)], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out, out  # start-up time itself is measured in benchmarks/bench_startup.py


SRC = Path(__file__).resolve().parents[1] / "src" / "ehrqa"
# Third-party libraries a module may import at its top level; every other one (torch, transformers,
# sentence-transformers, sklearn, peft, matplotlib, bitsandbytes, datasets, ...) is imported inside
# the function that needs it, so that light commands start fast.
TOP_LEVEL_THIRD_PARTY = {"numpy"}


def _modules() -> dict[str, ast.Module]:
    trees = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        trees[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = ast.parse(path.read_text())
    return trees


def _top_level_imports(body: list[ast.stmt]):
    """Import statements run when the module is imported (not in functions, not under TYPE_CHECKING)."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            yield from _top_level_imports(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            yield from _top_level_imports(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                yield from _top_level_imports(handler.body)
        elif isinstance(node, ast.ClassDef):
            yield from _top_level_imports(node.body)


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    return [f"{node.module}.{a.name}" for a in node.names]


def test_heavy_libraries_are_imported_only_inside_functions():
    offenders = []
    for module, tree in _modules().items():
        for node in _top_level_imports(tree.body):
            for name in _imported(node):
                root = name.split(".")[0]
                if root not in sys.stdlib_module_names and root not in ("ehrqa", *TOP_LEVEL_THIRD_PARTY):
                    offenders.append(f"{module}:{node.lineno} imports {root}")
    assert not offenders, "import these inside the functions that need them: " + "; ".join(offenders)


def test_the_import_graph_has_no_cycles():
    """Counting the imports inside functions too: a cycle hidden by a late import is still a cycle."""
    trees = _modules()

    def owner(name: str) -> str:  # "ehrqa.tasks.base.Context" -> "ehrqa.tasks.base"
        while name not in trees:
            name = name.rpartition(".")[0]
        return name

    graph = {
        module: {
            owner(n)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for n in _imported(node)
            if n.startswith("ehrqa.")
        }
        - {module, "ehrqa"}
        for module, tree in trees.items()
    }
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(graph[module]):
            assert state.get(dep) != "open", "import cycle: " + " -> ".join([*path[path.index(dep) :], dep])
            if dep not in state:
                visit(dep, [*path, dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


@pytest.mark.model
def test_prediction_commands_take_case_ranges(tmp_path, capsys):
    from ehrqa import read_submission

    out = tmp_path / "st2.json"
    assert main(["identify", "--out", str(out), "--cases", "101-102", "105"]) == 0
    assert [e["case_id"] for e in read_submission(out)] == ["101", "102", "105"]
    assert main(["generate", "--out", str(out), "--cases", "101", "999"]) == 2
    assert "--cases: not in the dataset: 999" in capsys.readouterr().err


def test_bad_model_flags_are_one_line_errors(tmp_path, capsys):
    out = str(tmp_path / "s.json")
    assert main(["identify", "--out", out, "--aligner", str(tmp_path / "none")]) == 2
    assert "no aligner.json" in capsys.readouterr().err
    assert main(["identify", "--out", out, "--method", "aligner", "--model", "m"]) == 2  # model flags need llm
    assert "need --method llm" in capsys.readouterr().err
    assert main(["generate", "--out", out, "--backend", "openai", "--cases", "101"]) == 2
    assert capsys.readouterr().err.strip() == (
        "ehrqa: error: the openai backend needs a base URL (e.g. --base-url http://127.0.0.1:8000/v1)"
    )


def test_global_flags_parse_before_and_after_the_command():
    from ehrqa.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["-v", "show"]).verbose is True  # a sub-command's absent flag does not undo it
    assert parser.parse_args(["show", "-v"]).verbose is True
    assert parser.parse_args(["show"]).quiet is False
    nested = parser.parse_args(["train", "aligner", "--out", "m", "-q"])
    assert nested.quiet is True and nested.verbose is False


def test_quiet_switches_off_every_progress_bar():
    # ehrqa's own bars and those of libraries (tqdm, huggingface_hub / transformers model loading)
    code = (
        "import os, sys, ehrqa.commands.show as show; from ehrqa.cli import main\n"
        "names = ('EHRQA_NO_PROGRESS', 'TQDM_DISABLE', 'HF_HUB_DISABLE_PROGRESS_BARS')\n"
        "show.run = lambda args: print([os.environ.get(n) for n in names])\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("EHRQA_NO_PROGRESS", "TQDM_DISABLE")}
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    quiet = subprocess.run([sys.executable, "-c", code, "show", "-q"], capture_output=True, text=True, env=env)
    assert quiet.stdout.strip() == "['1', '1', '1']", quiet.stderr
    loud = subprocess.run([sys.executable, "-c", code, "show"], capture_output=True, text=True, env=env)
    assert loud.stdout.strip() == "[None, None, None]", loud.stderr
