"""Vote arithmetic against hand-computed examples, and the ROUGE-L medoid (ehrqa.llm.vote)."""

from __future__ import annotations

import pytest

from ehrqa.data.submission import links_from_prediction, prediction_from_links
from ehrqa.errors import DataError
from ehrqa.llm.vote import (
    Rule,
    centrality,
    medoid,
    parse_rule,
    rouge_l_f1,
    vote_ids,
    vote_links,
)

# five samples; votes: 3 -> 5, 5 -> 3, 7 -> 2, 9 -> 1
FIVE = [["3", "5", "7"], ["3", "5"], ["3", "7"], ["3", "5", "9"], ["3"]]
NOTE = ["9", "7", "5", "3"]  # a note order that is not numeric


@pytest.mark.parametrize(
    "rule, kept",
    [
        (0.5, ["3", "5"]),  # 0.5 x 5 = 2.5 -> 3 votes
        (0.4, ["3", "5", "7"]),  # 2.0 -> 2 votes
        (0.6, ["3", "5"]),  # 3.0 exactly -> 3 votes (0.6 * 5 is 3.0000000000000004 in floats)
        (0.61, ["3"]),  # 3.05 -> 4 votes
        (1.0, ["3"]),
        (0.0, ["3", "5", "7", "9"]),  # any vote
        ("majority", ["3", "5"]),  # > 2.5
        ("union", ["3", "5", "7", "9"]),
        ("intersection", ["3"]),
        (2, ["3", "5", "7"]),
        ("k=4", ["3"]),
    ],
)
def test_id_votes_over_five_samples(rule, kept):
    vote = vote_ids(FIVE, rule)
    assert sorted(vote.kept, key=int) == kept
    assert vote.counts == {"3": 5, "5": 3, "7": 2, "9": 1}
    assert vote.total == 5


def test_threshold_half_of_four_keeps_ties_but_majority_does_not():
    four = [["1", "2"], ["1"], ["2"], []]  # 1 -> 2 votes, 2 -> 2 votes
    assert vote_ids(four, 0.5).kept == ["1", "2"]
    assert vote_ids(four, "majority").kept == []
    assert vote_ids(four, 0.75).kept == []  # 3 votes needed


def test_kept_and_counts_follow_the_note_order():
    vote = vote_ids(FIVE, "union", order=NOTE)
    assert vote.kept == ["9", "7", "5", "3"] and list(vote.counts) == ["9", "7", "5", "3"]
    # without an order, numeric
    assert vote_ids([["10", "9", "2"]], 1.0).kept == ["2", "9", "10"]


def test_a_sample_naming_an_id_twice_votes_once_and_none_samples_are_left_out():
    vote = vote_ids([["3", "3", "3"], None, ["4"], None], 0.5)
    assert vote.total == 2 and vote.counts == {"3": 1, "4": 1} and vote.kept == ["3", "4"]
    nothing = vote_ids([None, None], 0.5)
    assert nothing.kept == [] and nothing.counts == {} and nothing.total == 0


def test_weighted_votes():
    # voter weights 2, 1, 1: total 4
    samples = [["1", "2"], ["2", "3"], ["3"]]
    vote = vote_ids(samples, 0.5, weights=[2, 1, 1])
    assert vote.counts == {"1": 2, "2": 3, "3": 2} and vote.total == 4
    assert vote.kept == ["1", "2", "3"]  # 2 >= 0.5 x 4
    assert vote_ids(samples, "majority", weights=[2, 1, 1]).kept == ["2"]  # > 2
    # fractional weights: counts become floats and the tolerance absorbs rounding
    vote = vote_ids([["1"], ["1"], ["1"], ["2"]], 0.3, weights=[0.1, 0.1, 0.1, 0.7])
    assert vote.counts["1"] == pytest.approx(0.3) and vote.kept == ["1", "2"]
    assert vote_ids([["1"], ["2"]], "union", weights=[1, 0]).kept == ["1"]  # a zero weight is no vote


def test_two_stage_voting_across_models():
    # three models, three samples each; each model votes its samples at 0.5 (2 of 3), then majority across models
    models = [
        [["1", "2"], ["1"], ["1", "3"]],  # keeps 1
        [["2"], ["1", "2"], ["2", "4"]],  # keeps 2
        [["1", "2"], ["2"], ["1"]],  # keeps 1, 2
    ]
    per_model = [vote_ids(samples, 0.5).kept for samples in models]
    assert per_model == [["1"], ["2"], ["1", "2"]]
    final = vote_ids(per_model, "majority")
    assert final.kept == ["1", "2"] and final.counts == {"1": 2, "2": 2}
    # flat alternative: each sample weighs 1/3 of its model -> 1: 1 + 1/3 + 2/3 = 2, 2: 1/3 + 1 + 2/3 = 2,
    # 3 and 4: 1/3 each; majority of the total weight 3 needs more than 1.5
    flat = vote_ids([s for m in models for s in m], "majority", weights=[1 / 3] * 9)
    assert flat.counts["1"] == pytest.approx(2) and flat.counts["2"] == pytest.approx(2)
    assert flat.counts["3"] == pytest.approx(1 / 3) and flat.total == pytest.approx(3)
    assert flat.kept == ["1", "2"]
    assert set(flat.counts) == {"1", "2", "3", "4"} and "3" not in flat.kept


def test_link_votes_hand_computed():
    samples = [
        {"1": ["3", "5"], "2": ["7"]},
        {"1": ["3"], "2": ["7", "8"]},
        {"1": ["5", "3"], "2": []},
        None,  # an unusable reply: not counted
    ]
    vote = vote_links(samples, 0.5, answer_ids=["1", "2", "3"], note_order=["3", "5", "7", "8"])
    # 0.5 x 3 = 1.5 -> 2 votes: (1,3): 3, (1,5): 2, (2,7): 2, (2,8): 1
    assert vote.total == 3
    assert vote.counts == {"1": {"3": 3, "5": 2}, "2": {"7": 2, "8": 1}}
    assert vote.kept == {"1": ["3", "5"], "2": ["7"], "3": []}
    assert vote.pairs() == {("1", "3"), ("1", "5"), ("2", "7")}
    assert vote_links(samples, 1.0, answer_ids=["1", "2", "3"]).kept == {"1": ["3"], "2": [], "3": []}
    # without answer ids: those named, in first-seen order
    assert list(vote_links(samples, "union").kept) == ["1", "2"]


def test_link_votes_are_per_pair_not_per_note_sentence():
    # note 4 is cited three times, but for three different answer sentences
    samples = [{"1": ["4"]}, {"2": ["4"]}, {"3": ["4"]}]
    assert vote_links(samples, 0.5, answer_ids=["1", "2", "3"]).pairs() == set()


def test_official_prediction_round_trip():
    prediction = [
        {"answer_id": "1", "evidence_id": ["3"]},
        {"answer_id": "2", "evidence_id": []},
        {"answer_id": "1", "evidence_id": ["5", "3"]},
    ]
    assert links_from_prediction(prediction) == {"1": ["3", "5"], "2": []}
    assert prediction_from_links({"1": ["3", "5"], "2": []}) == [
        {"answer_id": "1", "evidence_id": ["3", "5"]},
        {"answer_id": "2", "evidence_id": []},
    ]


@pytest.mark.parametrize(
    "text, rule",
    [
        ("0.5", Rule("threshold", 0.5)),
        ("threshold=0.4", Rule("threshold", 0.4)),
        ("3", Rule("k", 3)),
        ("k=2", Rule("k", 2)),
        ("Majority", Rule("majority", 0)),
        ("any", Rule("union", 0)),
        ("all", Rule("intersection", 0)),
        (0.25, Rule("threshold", 0.25)),
        (4, Rule("k", 4)),
    ],
)
def test_parse_rule(text, rule):
    assert parse_rule(text) == rule


@pytest.mark.parametrize("bad", ["most", "1.5", "-0.1", 0, -2, True, "k=x", 1.01, None])
def test_bad_rules_are_one_line_data_errors(bad):
    with pytest.raises(DataError, match="vote rule"):
        parse_rule(bad)


def test_weights_must_match_samples():
    with pytest.raises(ValueError):
        vote_ids([["1"]], 0.5, weights=[1, 2])
    with pytest.raises(ValueError):
        vote_ids([["1"]], 0.5, weights=[-1])


# ---------------------------------------------------------------- texts

PAIRS = [
    ("The chest tube drained an infected pleural effusion.", "A chest tube was placed to drain the infected fluid."),
    ("He was given IV antibiotics (ceftriaxone) for 5 days.", "Antibiotics were given for five days, IV."),
    ("Méthimazole 10mg daily", "methimazole 10 mg, daily!"),
    ("", "anything"),
    ("same words here", "same words here"),
    ("a b c d e f", "f e d c b a"),
]


@pytest.mark.parametrize("a, b", PAIRS)
def test_rouge_l_equals_rouge_score(a, b):
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    expected = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False).score(a, b)["rougeL"].fmeasure
    assert rouge_l_f1(a, b) == pytest.approx(expected, abs=1e-12)
    assert rouge_l_f1(b, a) == pytest.approx(expected, abs=1e-12)


def test_rouge_l_by_hand():
    # LCS of "a b c d" and "a c e" is "a c": P = 2/3, R = 2/4, F = 2PR/(P+R) = 4/7
    assert rouge_l_f1("a b c d", "a c e") == pytest.approx(4 / 7)
    assert rouge_l_f1("x y", "z") == 0.0


def test_medoid_is_the_most_central_text():
    texts = [
        "the tube drained the infection",
        "a chest tube drained the infected fluid",
        "the chest tube drained infected fluid",
        "he went home on tuesday",
    ]
    scores = centrality(texts)
    assert medoid(texts) == max(range(4), key=lambda i: scores[i]) == 2
    # by hand for three texts: "a b", "a b c", "x": F(ab, abc) = 0.8, the others 0
    assert centrality(["a b", "a b c", "x"]) == [pytest.approx(0.4), pytest.approx(0.4), 0.0]


def test_medoid_ties_go_to_the_lowest_index_and_missing_texts_are_skipped():
    assert medoid(["a b", "a b c", "x"]) == 0
    assert medoid(["same", "same", "same"]) == 0
    assert medoid([None, "only one"]) == 1
    assert centrality([None, "only one"]) == [None, 1.0]
    assert medoid([None, "a b", None, "a b c", "x"]) == 1
    with pytest.raises(ValueError):
        medoid([])
    with pytest.raises(ValueError):
        medoid([None])


def llm_step(rule) -> dict:
    backend = {"kind": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}
    return {"backends": {"default": backend}, "steps": [{"subtask": 4, "method": "llm", "vote_threshold": rule}]}


@pytest.mark.parametrize(
    "written, rule, config_form",
    [
        ("majority", Rule("majority", 0), "majority"),
        (2, Rule("k", 2), 2),  # at least 2 votes (it used to load, then fail after the model calls)
        (0.5, Rule("threshold", 0.5), 0.5),
        ("union", Rule("union", 0), "union"),
    ],
)
def test_a_recipe_takes_the_rules_ensemble_takes(written, rule, config_form):
    from ehrqa.runs.config import parse_recipe
    from ehrqa.runs.ensemble import combine

    recipe = parse_recipe(llm_step(written), "r.yaml")
    assert recipe.steps[0].config.vote_threshold == rule
    assert recipe.to_dict()["steps"][0]["vote_threshold"] == config_form  # run.json keeps the recipe's words
    systems = [[{"case_id": "1", "prediction": ids}] for ids in (["1", "2"], ["1"], ["3"])]
    assert combine(2, systems, written)[0]["prediction"] == vote_ids([["1", "2"], ["1"], ["3"]], rule).kept


@pytest.mark.parametrize("bad", ["most", 1.5, "k=x", 0])
def test_a_bad_rule_in_a_recipe_is_refused_at_load_before_any_model_call(tmp_path, capsys, openai_server, bad):
    import yaml

    from ehrqa.cli import main

    recipe = llm_step(bad)
    recipe["backends"]["default"]["base_url"] = openai_server.base_url
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["run", "--recipe", str(path), "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err.strip()
    assert "steps[0].vote_threshold: vote rule" in error and "\n" not in error
    assert openai_server.count == 0
    assert not (tmp_path / "run").exists()
