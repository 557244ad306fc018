"""Batch files: ``ehrqa batch export`` writes what a run still needs, a played ``vllm run-batch``
answers it, ``ehrqa batch import`` fills the reply cache, and ``ehrqa run`` then calls no model."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from ehrqa.cli import main

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import play_run_batch  # noqa: E402

# The sample's notes without its key: nothing to score, so only the model calls are exercised.
SAMPLE_XML = ROOT / "src" / "ehrqa" / "data" / "sample" / "archehr-qa.xml"
CASES = ["--xml", str(SAMPLE_XML), "--cases", "101", "102"]


def write_recipe(path: Path, base_url: str) -> Path:
    """ST2 labels from a server, then evidence-first ST3 answers that read ST2's output."""
    st2 = {"subtask": 2, "method": "llm", "backend": "srv", "prompt": "st2-classify@1", "max_new_tokens": 60}
    st3 = {"subtask": 3, "method": "llm", "backend": "srv", "prompt": "st3-evidence@1", "evidence": "st2"}
    recipe = {
        "name": "batch-test",
        "backends": {"srv": {"kind": "openai", "model": "fake-model", "base_url": base_url, "retries": 0}},
        "steps": [st2, {**st3, "cite": False}],  # cite: False keeps the aligner out of this test
    }
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def labels(body: dict) -> str | None:
    """ST2 requests get every listed sentence id labelled (the first essential); others the echo."""
    user = body["messages"][-1]["content"]
    match = re.search(r"Label each note sentence id \(([^)]*)\)", user)
    if not match:
        return None
    ids = [i.strip() for i in match.group(1).split(",") if i.strip()]
    return json.dumps({sid: "essential" if k == 0 else "not-relevant" for k, sid in enumerate(ids)})


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def canonical(body: dict) -> str:
    return json.dumps(body, sort_keys=True)


def test_export_play_import_then_the_run_calls_no_model(tmp_path, openai_server, capsys):
    openai_server.responder = labels
    recipe = str(write_recipe(tmp_path / "recipe.yaml", openai_server.base_url))
    run_dir = tmp_path / "run"
    server_root = openai_server.base_url.removesuffix("/v1")

    # Round by round: each export holds what the run can ask now; the evidence-first step's
    # requests need ST2's labels, so they come in a later round.
    rounds = []
    for n in range(4):
        requests, results = tmp_path / f"requests{n}.jsonl", tmp_path / f"results{n}.jsonl"
        assert main(["batch", "export", str(run_dir), "--out", str(requests), "--recipe", recipe, *CASES]) == 0
        lines = read_lines(requests) if requests.read_text() else []
        rounds.append(lines)
        if not lines:
            break
        assert all(line["method"] == "POST" and line["url"] == "/v1/chat/completions" for line in lines)
        assert len({line["custom_id"] for line in lines}) == len(lines)
        play_run_batch.main(["-i", str(requests), "-o", str(results), "--server", server_root])
        assert main(["batch", "import", str(run_dir), str(results)]) == 0
    assert [len(r) for r in rounds] == [2, 2, 0]  # ST2 of both cases, then their ST3, then nothing
    assert all("Label each note sentence id" in line["body"]["messages"][-1]["content"] for line in rounds[0])
    assert not (run_dir / "steps").exists()  # export never writes records; only the reply cache is filled

    sent_by_batch = openai_server.count
    assert sent_by_batch == 4
    capsys.readouterr()
    assert main(["run", "--recipe", recipe, *CASES, "--out", str(run_dir)]) == 0
    assert openai_server.count == sent_by_batch  # every reply came from the imported cache
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [row["status"] for row in summary] == ["ok", "ok"] and all(row["calls"] == 0 for row in summary)

    # The exported bodies are exactly what a live run sends.
    openai_server.reset()
    assert main(["run", "--recipe", recipe, *CASES, "--out", str(tmp_path / "live")]) == 0
    exported = sorted(canonical(line["body"]) for lines in rounds for line in lines)
    assert sorted(canonical(body) for body in openai_server.bodies) == exported

    # A run directory made with other settings is refused, naming that directory.
    capsys.readouterr()
    changed = ["--set", "st2.max_new_tokens=61"]
    assert (
        main(
            ["batch", "export", str(run_dir), "--out", str(tmp_path / "x.jsonl"), "--recipe", recipe, *CASES, *changed]
        )
        == 2
    )
    assert f"{run_dir}: made with a different recipe" in capsys.readouterr().err


def test_import_counts_failed_lines_and_stores_only_replies(tmp_path, openai_server, capsys):
    recipe = str(write_recipe(tmp_path / "recipe.yaml", openai_server.base_url))
    requests, results = tmp_path / "requests.jsonl", tmp_path / "results.jsonl"
    openai_server.responder = labels
    main(["batch", "export", str(tmp_path / "run"), "--out", str(requests), "--recipe", recipe, *CASES])
    lines = read_lines(requests)
    openai_server.push("400")  # the first request is refused, the second answered
    play_run_batch.main(["-i", str(requests), "-o", str(results), "--server", openai_server.base_url[:-3]])
    capsys.readouterr()
    assert main(["batch", "import", str(tmp_path / "run"), str(results)]) == 2
    assert "1 line(s) carry no reply (HTTP 400)" in capsys.readouterr().err
    assert len((tmp_path / "run" / "cache" / "replies.jsonl").read_text().splitlines()) == 1
    # The next export asks only for the refused one.
    again = tmp_path / "again.jsonl"
    main(["batch", "export", str(tmp_path / "run"), "--out", str(again), "--recipe", recipe, *CASES])
    assert len(read_lines(again)) == 1 and read_lines(again)[0]["custom_id"] in {line["custom_id"] for line in lines}


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json\n", "line 1: not JSON"),
        ('{"response": {"status_code": 200, "body": {}}}\n', "line 1: no custom_id"),
        ('{"custom_id": "abc"}\n', "neither response nor error"),
    ],
)
def test_a_file_that_is_not_batch_output_is_one_line_error(tmp_path, capsys, content, message):
    results = tmp_path / "results.jsonl"
    results.write_text(content, encoding="utf-8")
    assert main(["batch", "import", str(tmp_path / "run"), str(results)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "run").exists()


def test_a_local_model_backend_is_refused_with_one_line(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "backends": {"local": {"kind": "hf"}},
                "steps": [{"subtask": 1, "method": "llm", "backend": "local", "prompt": "st1-question@1", "shots": 0}],
            }
        )
    )
    out = tmp_path / "requests.jsonl"
    assert main(["batch", "export", str(tmp_path / "run"), "--out", str(out), "--recipe", str(recipe), *CASES]) == 2
    assert "batch files hold requests for OpenAI-compatible servers" in capsys.readouterr().err
