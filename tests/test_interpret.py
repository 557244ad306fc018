from dataclasses import replace

import pytest

from ehrqa.tasks.interpret import patient_question_text, predict, to_clinician_question
from helpers import make_case


def test_lay_references_become_the_patient():
    assert to_clinician_question("Why did my dad need a tube if it was just pneumonia?") == (
        "Why did the patient need a tube if it was just pneumonia?"
    )
    assert to_clinician_question("Is my mother's heart getting worse") == "Is the patient's heart getting worse?"


def test_question_is_within_15_words_and_ends_with_question_mark():
    q = to_clinician_question("why " * 30)
    assert len(q.split()) == 15 and q.endswith("?") and q.startswith("Why")


def test_uses_the_last_question_sentence_of_the_narrative():
    unmarked = replace(make_case(), narrative="I was sick. Was it my heart? Why the stent? Thanks.")
    assert patient_question_text(unmarked) == "Why the stent?"


def test_predict_reads_only_the_official_st1_input():
    case = make_case()
    assert predict([case.input_for(1)]) == {"7": "Why did the patient need a stent?"}
    assert predict([replace(case, clinician_question="Other?").input_for(1)]) == predict([case.input_for(1)])


def test_clean_question_keeps_one_line_within_15_words():
    from ehrqa.tasks.postprocess import clean_question

    reply = "<think>hmm</think>\nQuestion: Why was a stent placed\nMore text"
    assert clean_question(reply) == "Why was a stent placed?"
    assert clean_question('"Why was the patient intubated?"') == "Why was the patient intubated?"
    assert len(clean_question("why " * 40).split()) == 15
    assert clean_question("  \n<think>unfinished") == ""


def test_llm_method_uses_retrieved_examples_and_falls_back_on_empty_replies():
    from ehrqa.tasks.base import Context
    from ehrqa.tasks.interpret import InterpretConfig
    from helpers import ScriptedBackend

    cases = [make_case("7"), make_case("8")]
    backend = ScriptedBackend(["Why was a coronary stent placed?", "   "])
    ctx = Context(backends={"default": backend})
    out = predict([c.input_for(1) for c in cases], InterpretConfig(method="llm", shots=2), ctx)
    assert out == {"7": "Why was a coronary stent placed?", "8": "Why did the patient need a stent?"}
    assert ctx.records.by_case["8"]["status"] == "fallback"
    conversation = backend.requests[0].messages
    assert [m["role"] for m in conversation] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert conversation[-1]["content"].endswith(cases[0].narrative)
    assert all("Why was a coronary stent placed" not in m["content"] for m in conversation)  # no gold in the prompt


def test_nearest_questions_prefer_shared_rare_words():
    from ehrqa.data.case import Case
    from ehrqa.retrieval.examples import question_pool

    query = Case(id="q", narrative="I take metformin for diabetes; can metformin hurt my kidneys?")
    examples = question_pool("meqsum").nearest_questions(query, 3)
    assert sum("metformin" in e.narrative.lower() for e in examples) >= 2


@pytest.mark.model
def test_interpret_command_writes_a_valid_submission(tmp_path):
    from ehrqa import read_submission, sample_dir
    from ehrqa.cli import main

    out = tmp_path / "st1" / "submission.json"
    assert main(["interpret", "--out", str(out)]) == 0
    entries = read_submission(out)
    assert main(["validate", "--submission", str(out), "--subtask", "1", "--data", str(sample_dir())]) == 0
    assert all(len(e["prediction"].split()) <= 15 for e in entries)


def test_model_flags_without_the_llm_method_are_refused(tmp_path, capsys):
    from ehrqa.cli import main

    out = str(tmp_path / "s.json")
    assert main(["interpret", "--out", out, "--method", "rule", "--base-url", "http://127.0.0.1:9/v1"]) == 2
    assert "need --method llm" in capsys.readouterr().err


@pytest.mark.parametrize("flags, examples", [([], 3), (["--shots", "0"], 0), (["--shots", "1"], 1)])
def test_the_shots_flag_is_the_number_of_examples_shown(tmp_path, openai_server, flags, examples):
    from ehrqa import read_dataset, write_xml
    from ehrqa.cli import main

    xml = tmp_path / "archehr-qa.xml"
    write_xml([replace(read_dataset()[0], clinician_question="")], xml)
    server = ["--backend", "openai", "--model", "m", "--base-url", openai_server.base_url]
    out = str(tmp_path / "q.json")  # no ST1 gold: nothing to score, so no scoring model is loaded
    assert main(["interpret", "--method", "llm", *server, "--xml", str(xml), "--out", out, *flags]) == 0
    roles = [m["role"] for m in openai_server.bodies[0]["messages"]]
    assert roles == ["system", *["user", "assistant"] * examples, "user"]  # the default, 3, is InterpretConfig's


def test_flags_are_the_config_fields_with_the_config_defaults():
    from ehrqa.cli import build_parser
    from ehrqa.tasks.generate import GenerateConfig

    parser = build_parser()
    generate = next(a for a in parser._actions if a.dest == "command").choices["generate"]
    help_text = " ".join(generate.format_help().split())
    default = GenerateConfig.max_new_tokens
    assert f"--max-new-tokens MAX_NEW_TOKENS most tokens per reply (default: {default})" in help_text
    assert "--cite, --no-cite" in help_text and "--top-p" in help_text  # every field is a flag
    args = parser.parse_args(["generate", "--out", "x.json", "--max-new-tokens", "9", "--no-cite"])
    assert args.max_new_tokens == 9 and args.cite is False
    assert not hasattr(args, "shots")  # a flag left out leaves the config's own value


def test_backend_flags_are_the_backend_spec_fields_with_its_defaults():
    from ehrqa.cli import build_parser
    from ehrqa.llm.backend import BackendSpec

    parser = build_parser()
    generate = next(a for a in parser._actions if a.dest == "command").choices["generate"]
    help_text = " ".join(generate.format_help().split())
    spec = BackendSpec()
    assert f"--timeout TIMEOUT openai: seconds per request (default: {spec.timeout})" in help_text
    key_env = f"--api-key-env NAME openai: environment variable holding the API key (default: {spec.api_key_env})"
    assert key_env in help_text
    assert "--dtype" not in help_text and "--kind" not in help_text  # dtype has no flag; kind is --backend
    args = parser.parse_args(["generate", "--out", "x.json", "--retries", "1", "--no-thinking"])
    assert args.retries == 1 and args.thinking is False
    assert not hasattr(args, "base_url")  # a flag left out leaves the spec's own value
