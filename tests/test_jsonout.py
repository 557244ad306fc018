"""Reading JSON out of model replies, and the ST2/ST4 reply contracts (ehrqa.llm.jsonout)."""

from __future__ import annotations

import random
import string

import pytest

from ehrqa.data.archehr import read_dataset
from ehrqa.llm.jsonout import correction_message, extract_json, parse_alignment, parse_evidence
from ehrqa.llm.reply import strip_thinking as strip_think

ANSWERS = ["1", "2", "3"]
NOTE = [str(i) for i in range(1, 13)]


def links(reply: str) -> dict:
    parsed = parse_alignment(reply, ANSWERS, NOTE)
    assert parsed.ok, parsed.problems
    return parsed.value


# ---------------------------------------------------------------- extraction


def test_think_blocks_are_removed_before_looking_for_json():
    assert strip_think("<think>draft [1]</think>\n[2]").strip() == "[2]"
    assert strip_think("reasoning only the template opened</think> [3]").strip() == "[3]"
    assert strip_think("[4] <think>cut off while thinking").strip() == "[4]"
    assert strip_think("<think>all thinking [5]").strip() == ""  # unfinished thinking is not an answer
    assert extract_json("<think>{'a': 1}</think>The answer: {\"b\": 2}").value == {"b": 2}


def test_code_fence_with_prose_around():
    reply = 'Sure! Here are the links.\n```json\n{"1": [3, 5], "2": [], "3": ["7"]}\n```\nLet me know if...'
    assert links(reply) == {"1": ["3", "5"], "2": [], "3": ["7"]}


def test_the_last_complete_block_of_the_expected_shape_wins():
    reply = 'Draft:\n{"1": [1]}\nOn reflection, sentence 2 does not support it.\nFinal:\n{"1": [4], "2": [6]}'
    assert links(reply)["1"] == ["4"]
    # a later block of another shape does not displace the alignment
    reply = '{"1": [4], "2": [6]}\n{"confidence": "high"}'
    assert links(reply) == {"1": ["4"], "2": ["6"], "3": []}


def test_a_block_on_its_own_line_beats_ids_cited_inside_a_sentence():
    parsed = parse_evidence("[3, 5]\nNote that sentence [7] was left out on purpose.", NOTE)
    assert parsed.value == ["3", "5"]
    # with nothing standing alone, the last inline value is taken
    assert parse_evidence("I pick [3] and then [4, 6].", NOTE).value == ["4", "6"]


@pytest.mark.parametrize(
    "reply, repair",
    [
        ('{"1": [3, 5,], "2": [],}', "trailing comma"),
        ("{'1': ['3', '5'], '2': []}", "single quotes"),
        ("{1: [3, 5], 2: []}", "unquoted words"),
        ('{answer_1: "x", "1": [3, 5], "2": None}', "Python literals"),
        ('{"1": [3, 5], // the infection\n "2": []}', "comments"),
    ],
)
def test_near_json_is_repaired(reply, repair):
    parsed = parse_alignment(reply, ANSWERS, NOTE)
    assert parsed.ok and parsed.value["1"] == ["3", "5"] and parsed.value["2"] == []
    assert repair in parsed.repairs


def test_single_quoted_strings_holding_double_quotes_and_apostrophes():
    found = extract_json("""{'why': 'the "tube" was the patient\\'s', 'ids': [1]}""")
    assert found.value == {"why": 'the "tube" was the patient\'s', "ids": [1]}


def test_brackets_inside_strings_do_not_end_the_value():
    found = extract_json('{"reason": "see [3] and {x}", "evidence": [3]} trailing ] }')
    assert found.value == {"reason": "see [3] and {x}", "evidence": [3]}


def test_a_reply_cut_off_by_the_token_limit_keeps_its_complete_part():
    reply = (
        '[{"answer_id": "1", "evidence_id": ["3"]}, {"answer_id": "2", "evidence_id": ["4"]}, {"answer_id": "3", "evid'
    )
    parsed = parse_alignment(reply, ANSWERS, NOTE)
    assert parsed.ok and parsed.value == {"1": ["3"], "2": ["4"], "3": []}
    assert "cut off" in parsed.repairs
    assert any("cut off" in p for p in parsed.problems)


def test_extract_json_returns_none_when_nothing_fits():
    assert extract_json("no brackets at all") is None
    assert extract_json("[1, 2]", accept=lambda v: isinstance(v, dict)) is None
    assert extract_json(None) is None  # type: ignore[arg-type]
    # a shape test that raises is a rejection, not a crash
    assert extract_json("[1]", accept=lambda v: v["x"]) is None


# ---------------------------------------------------------------- ST4


def test_alignment_object_with_every_id_form():
    reply = '{"1": ["S3", "[5]"], "2": "sentence 7", "3": "2,5"}'
    assert links(reply) == {"1": ["3", "5"], "2": ["7"], "3": ["2", "5"]}
    assert links('{"answer 1": "sentences 3 and 5", "A2": "#9", "3": 4}') == {"1": ["3", "5"], "2": ["9"], "3": ["4"]}


@pytest.mark.parametrize("dash", ["-", "–", " to ", "..", " - "])
def test_alignment_ranges(dash):
    assert links(f'{{"1": "3{dash}5", "2": ["S8{dash}S9"]}}') == {"1": ["3", "4", "5"], "2": ["8", "9"], "3": []}


def test_a_range_reaching_past_the_note_keeps_the_real_ids_and_counts_the_rest():
    parsed = parse_alignment('{"1": "11-14"}', ANSWERS, NOTE)
    assert parsed.value["1"] == ["11", "12"] and parsed.dropped == 2


def test_the_official_submission_shape_and_repeated_answers_are_unioned():
    reply = (
        '[{"answer_id": "1", "evidence_id": ["3"]}, {"answer_id": 2, "evidence_id": []},'
        ' {"answer_id": "1", "evidence_id": "5"}, {"answer_id": "3", "evidence_id": null}]'
    )
    assert links(reply) == {"1": ["3", "5"], "2": [], "3": []}


@pytest.mark.parametrize(
    "reply",
    [
        '{"alignments": {"1": [5, 3], "2": [6]}}',
        '{"alignments": [{"answer_id": "1", "evidence_id": ["3", "5"]}, {"answer_id": "2", "evidence_id": ["6"]}]}',
        '{"case_id": "901", "prediction": [{"answer_id": "1", "evidence_id": ["3", "5"]}, '
        '{"answer_id": "2", "evidence_id": ["6"]}]}',
        '{"reasoning": "short", "links": [[1, [3, 5]], [2, [6]]]}',
        '[{"1": [3, 5]}, {"2": {"evidence": [6], "why": "dose"}}]',
        '{"answers": [{"answer_sentence_id": 1, "citations": "3, 5"}, {"answer_sentence_id": 2, "citations": "6"}]}',
    ],
)
def test_alignment_wrappers_and_variants(reply):
    assert links(reply) == {"1": ["3", "5"], "2": ["6"], "3": []}


def test_values_come_out_in_note_order_without_duplicates():
    assert links('{"1": [9, 2, 9, "2", "S2"]}')["1"] == ["2", "9"]


def test_unknown_ids_are_dropped_and_counted_and_never_returned():
    parsed = parse_alignment('{"1": [3, 40, 41], "2": [0], "9": [4]}', ANSWERS, NOTE)
    assert parsed.ok
    assert parsed.value == {"1": ["3"], "2": [], "3": []}
    assert parsed.dropped == 4  # notes 40, 41, 0 and answer 9
    text = " ".join(parsed.problems)
    assert "40, 41" in text and "answer sentence ids dropped: 9" in text


def test_missing_answer_ids_mean_unsupported():
    parsed = parse_alignment('{"2": [4]}', ANSWERS, NOTE)
    assert parsed.ok and parsed.value == {"1": [], "2": ["4"], "3": []}
    assert any("1, 3" in p and "not in the reply" in p for p in parsed.problems)


def test_ids_are_matched_to_the_case_even_when_the_case_numbers_from_zero():
    assert parse_alignment('{"0": ["00", 1]}', ["0"], ["0", "1", "2"]).value == {"0": ["0", "1"]}


@pytest.mark.parametrize(
    "reply",
    ["", "   ", "I could not find any support.", "{}", "[]", '{"answer": "the tube drained pus"}', "[1, 2, 3]", None],
)
def test_unusable_alignment_replies_are_not_ok_and_empty(reply):
    parsed = parse_alignment(reply, ANSWERS, NOTE)
    assert not parsed.ok and parsed.value == {"1": [], "2": [], "3": []} and parsed.problems


def test_a_reply_naming_only_foreign_ids_is_not_ok():
    parsed = parse_alignment('{"1": [40, 41], "2": [50]}', ANSWERS, NOTE)
    assert not parsed.ok and parsed.value == {"1": [], "2": [], "3": []} and parsed.dropped == 3
    # an explicit "nothing supports it" is a usable reply
    assert parse_alignment('{"1": [], "2": [], "3": []}', ANSWERS, NOTE).ok


# ---------------------------------------------------------------- ST2


@pytest.mark.parametrize(
    "reply",
    [
        "[3, 5]",
        '["3", "S5"]',
        '```json\n{"evidence": [5, 3]}\n```',
        '{"essential": ["3", "5"]}',
        '{"essential_ids": "3, 5", "reasoning": "the dose and the date"}',
        '{"3": "essential", "4": "not-relevant", "5": "Essential", "6": "supplementary"}',
        '{"3": {"label": "essential"}, "4": {"label": "not relevant"}, "5": {"label": "essential"}}',
        '[{"id": 3, "label": "essential"}, {"id": 4, "label": "supplementary"}, {"sentence_id": "5", "relevance": '
        '"essential"}]',
        '{"essential": [3, 5], "supplementary": [6], "not-relevant": [1, 2]}',
        '{"sentences": [{"id": 3, "label": "essential"}, {"id": 5, "label": "essential"}, {"id": 6, "label": "none"}]}',
        '[{"id": 3}, {"id": 5}]',
        '{"3": true, "4": false, "5": true}',
        "3, 5",
        '"3, 5"',
        "```\n3, 5\n```",
        '["3-3, 5"]',
        "<think>is 4 needed? no</think>\n3 and 5",
    ],
)
def test_evidence_forms(reply):
    parsed = parse_evidence(reply, NOTE)
    assert parsed.ok and parsed.value == ["3", "5"], parsed.problems


def test_supplementary_is_kept_only_when_asked():
    reply = '{"3": "essential", "6": "supplementary", "7": "not-relevant"}'
    assert parse_evidence(reply, NOTE).value == ["3"]
    assert parse_evidence(reply, NOTE, keep_labels=("essential", "supplementary")).value == ["3", "6"]
    listed = '{"essential": [3], "supplementary": [6]}'
    assert parse_evidence(listed, NOTE, keep_labels=("essential", "supplementary")).value == ["3", "6"]


def test_unknown_labels_are_reported_not_kept():
    parsed = parse_evidence('{"3": "essential", "4": "maybe"}', NOTE)
    assert parsed.ok and parsed.value == ["3"] and any("label" in p for p in parsed.problems)


def test_evidence_unknown_ids_and_empty_answers():
    parsed = parse_evidence("[3, 99, 100]", NOTE)
    assert parsed.ok and parsed.value == ["3"] and parsed.dropped == 2
    assert parse_evidence("[]", NOTE).ok and parse_evidence("[]", NOTE).value == []
    assert parse_evidence('{"evidence": []}', NOTE).value == []
    assert parse_evidence("None", NOTE).ok


@pytest.mark.parametrize("reply", ["", "I am not sure.", '["essential", "not-relevant"]', "[99]", None, "{}"])
def test_unusable_evidence_replies(reply):
    parsed = parse_evidence(reply, NOTE)
    assert not parsed.ok and parsed.value == [] and parsed.problems


# ---------------------------------------------------------------- correction turn


def test_correction_message_names_problems_and_valid_ids_but_never_reply_text():
    reply = '{"1": ["the patient had pneumonia"], "2": [44]}'
    parsed = parse_alignment(reply, ANSWERS, NOTE)
    message = correction_message(parsed)
    assert "44" in message and "1-3" in message and "1-12" in message
    assert "pneumonia" not in message and "patient" not in message
    evidence = parse_evidence("Sentences about the chest tube.", NOTE)
    message = correction_message(evidence)
    assert not evidence.ok and "JSON list" in message and "chest" not in message


def test_correction_message_never_quotes_note_text_on_real_cases():
    for case in read_dataset():
        answers = [a.id for a in case.answer_sentences]
        quoted = "\n".join(f'"{s.id}": "{s.text}"' for s in case.sentences)
        for parsed in (
            parse_alignment("{" + quoted + "}", answers, case.sentence_ids),
            parse_evidence(quoted, case.sentence_ids),
        ):
            message = " ".join(correction_message(parsed).split())
            for s in case.sentences:
                words = s.text.split()
                for i in range(len(words) - 2):
                    assert " ".join(words[i : i + 3]) not in message


# ---------------------------------------------------------------- robustness


def test_nothing_raises_on_random_replies():
    rng = random.Random(7)
    alphabet = string.printable + "–“”’…"
    pieces = [
        '{"1": [',
        "]",
        "}",
        "[",
        '"S3"',
        "'",
        "True",
        ",",
        ":",
        "<think>",
        "</think>",
        "```json\n",
        "3-5",
        "null",
    ]
    for _ in range(400):
        reply = "".join(
            rng.choice(pieces) if rng.random() < 0.5 else rng.choice(alphabet) for _ in range(rng.randint(0, 60))
        )
        a = parse_alignment(reply, ANSWERS, NOTE)
        e = parse_evidence(reply, NOTE)
        assert set(a.value) == set(ANSWERS)
        assert all(set(v) <= set(NOTE) for v in a.value.values())
        assert set(e.value) <= set(NOTE)
        correction_message(a), correction_message(e)


def test_pathological_nesting_is_cheap_and_safe():
    parsed = parse_alignment("[" * 50_000 + "{" * 50_000, ANSWERS, NOTE)
    assert not parsed.ok
    assert parse_evidence("[" * 3000 + "]" * 3000, NOTE).value == []
