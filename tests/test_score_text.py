"""ST1 / ST3 text metrics: BLEU, ROUGE, SARI, loading rules, averaging and the overall score."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from ehrqa.data.case import Case
from ehrqa.errors import DataError
from ehrqa.score import report, score, score_submission
from ehrqa.score.bleu import sentence_bleu, tokenize_13a
from ehrqa.score.rouge import sentence_rouge, tokenize
from ehrqa.score.sari import corpus_sari, sentence_sari

# ---------------------------------------------------------------- BLEU


def test_13a_tokenizer_rules():
    assert tokenize_13a("well-\nknown &amp; <skipped>ok. 2.5 mg, x-ray 3-4") == [
        "wellknown",
        "&",
        "ok",
        ".",
        "2.5",
        "mg",
        ",",
        "x-ray",
        "3",
        "-",
        "4",
    ]


def test_bleu_by_hand():
    # 4/5 unigrams, 3/4 bigrams, 2/3 trigrams, 1/2 4-grams; same length so BP = 1
    assert sentence_bleu("a b c d e", "a b c d f") == pytest.approx((0.8 * 0.75 * (2 / 3) * 0.5) ** 0.25, rel=1e-15)
    assert sentence_bleu("The cat sat on the mat .", "The cat sat on the mat .") == 1.0


def test_bleu_zero_rules_and_case_sensitivity():
    assert sentence_bleu("Aspirin daily", "Aspirin daily") == 0.0  # under 4 tokens: no 4-grams
    assert sentence_bleu("a b c d x", "a b c y d") == 0.0  # no matching 4-gram -> 0, no smoothing
    assert sentence_bleu("THE CAT SAT ON THE MAT", "the cat sat on the mat") == 0.0  # case-sensitive
    assert sentence_bleu("<skipped>", "a b c d") == 0.0  # no tokens at all


def test_bleu_brevity_penalty_uses_ratio():
    # hyp is the first 6 of 8 reference tokens: all precisions 1, BP = exp(1 - 1/ratio)
    ref = "one two three four five six seven eight"
    assert sentence_bleu("one two three four five six", ref) == pytest.approx(math.exp(1 - 8 / 6), rel=1e-15)
    assert sentence_bleu(ref + " nine", ref) < 1.0  # longer: BP 1, but a precision drops


def test_bleu_close_to_sacrebleu_without_smoothing():
    import sacrebleu

    rng = random.Random(1)
    words = "the patient had a fever , and CT showed pneumonia . He was given antibiotics".split()
    for _ in range(200):
        hyp = " ".join(rng.choices(words, k=rng.randint(4, 25)))
        ref = " ".join(rng.choices(words, k=rng.randint(4, 25)))
        theirs = sacrebleu.sentence_bleu(hyp, [ref], smooth_method="none").score / 100
        assert sentence_bleu(hyp, ref) == pytest.approx(theirs, rel=1e-9, abs=1e-12)


# ---------------------------------------------------------------- ROUGE


def test_rouge_tokenizer():
    assert tokenize("Méthimazole 5MG, ALL-CAPS") == ["m", "thimazole", "5mg", "all", "caps"]


def test_rouge_matches_rouge_score_library():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=False)
    rng = random.Random(0)
    words = [
        "the",
        "Cat",
        "sat",
        "mat",
        "on",
        "a",
        "Dr.",
        "É",
        "méthimazole",
        "\n",
        "\n\n",
        "FEVER",
        "x-ray",
        "2.5",
        "",
    ]
    for _ in range(400):
        pred = " ".join(rng.choice(words) for _ in range(rng.randint(0, 30)))
        ref = " ".join(rng.choice(words) for _ in range(rng.randint(0, 30)))
        theirs = scorer.score(ref, pred)
        ours = sentence_rouge(pred, ref)
        assert ours == {k: theirs[k].fmeasure for k in ours}


def test_rouge_lsum_splits_on_newlines_only():
    one_line = sentence_rouge("b a. d c.", "a b. c d.")
    assert one_line["rougeLsum"] == one_line["rougeL"] == 0.5
    multi = sentence_rouge("b a\nd c", "a b\nc d")
    assert multi["rougeL"] == 0.5 and multi["rougeLsum"] == 0.5
    multi = sentence_rouge("c d\na b", "a b\nc d")
    assert multi["rougeL"] == 0.5 and multi["rougeLsum"] == 1.0  # sentence-level LCS recovers both


# ---------------------------------------------------------------- SARI


SOURCE = "About 95 species are currently accepted ."
PREDICTION = "About 95 you now get in ."
REFERENCES = [
    "About 95 species are currently known .",
    "About 95 species are now accepted .",
    "95 species are now accepted .",
]


def test_sari_published_values():
    assert sentence_sari(SOURCE, PREDICTION, REFERENCES) == 26.953601953601954  # `sari` metric card
    assert sentence_sari(SOURCE, PREDICTION, REFERENCES[:1]) == 21.805555555555557  # `wiki_split` metric card


def test_sari_two_sentence_example():
    # The `evaluate` metric's two-example corpus. Our implementation follows evaluate's code
    # operation for operation (and reproduces 26.953601953601954 above bit for bit); it gives
    # 29.13266517433184, the value OFFLINE_STACK.md records for `evaluate`. The issue quotes
    # 29.132726648960706, which no variant we tried reproduces (original keep recall,
    # deletion F1, untokenised text: 29.51, 32.23, 32.61, ...), so we keep the faithful one.
    got = corpus_sari(
        [SOURCE, "The cat perched on the mat."],
        [PREDICTION, "Cat on mat."],
        [REFERENCES, ["The cat sat on the mat.", "The cat is on the mat.", "The cat sat."]],
    )
    assert got == 29.13266517433184


def test_sari_identity_and_lowercasing():
    assert sentence_sari("He had a FEVER.", "He was febrile.", ["He was febrile."]) == 100.0
    assert sentence_sari("x", "HE WAS FEBRILE.", ["he was febrile."]) == 100.0


# ---------------------------------------------------------------- overall


def test_qu_nlp_overall_arithmetic():
    assert report.overall([9.42, 27.04, 55.42, 43.00, 25.28, 37.04]) == 32.86666666666667
    scores = dict(zip(report.LEADERBOARD[3], [9.42, 27.04, 55.42, 43.00, 25.28, 37.04], strict=True))
    report.add_overall(3, scores, official=set(scores))
    assert scores["overall_score"] == 32.86666666666667


def test_overall_partial_names_its_metrics():
    scores = {"bleu": 10.0, "rougeLsum": 20.0, "sari": 60.0, "bertscore_proxy": 50.0}
    report.add_overall(3, scores, official={"bleu", "rougeLsum", "sari"})
    assert "overall_score" not in scores
    assert scores["overall_partial_metrics"] == ["bleu", "rougeLsum", "sari", "bertscore_proxy"]
    assert scores["overall_partial"] == 35.0


# ---------------------------------------------------------------- scoring submissions


def _cases() -> list[Case]:
    answers = [
        "He had pneumonia. A chest tube drained the infected fluid.",
        "Her troponin rose, so she had a small heart attack.",
        "Méthimazole was stopped because of a low white cell count.",
        "THE SCAN SHOWED NO BLEEDING.",
    ]
    return [
        Case(
            id=str(i),
            narrative=f"My relative {i} was in hospital. Why was this done?",
            answer=a,
            clinician_question=f"Why was treatment {i} given?",
        )
        for i, a in enumerate(answers, start=11)
    ]


def _entries(preds: dict[str, str]) -> list[dict]:
    return [{"case_id": k, "prediction": v} for k, v in preds.items()]


PREDS = {
    "11": "He had pneumonia and a chest tube drained fluid.",
    "12": "  Her troponin rose.\nShe had a small heart attack.  ",
    "13": "Methimazole was stopped for a low white count.",
    "14": "the scan showed no bleeding.",
}


def test_st3_means_per_case_values_in_submission_order():
    cases = _cases()
    for preds in (PREDS, dict(reversed(PREDS.items()))):
        result = score(3, _entries(preds), cases, metrics="bleu,rouge,sari")
        refs = {c.id: c.answer for c in cases}
        srcs = {c.id: c.narrative for c in cases}
        order = list(preds)
        pairs = [(preds[k].strip(), k) for k in order]
        assert result.scores["bleu"] == np.mean([sentence_bleu(t, refs[k]) for t, k in pairs]) * 100
        assert result.scores["rougeLsum"] == np.mean([sentence_rouge(t, refs[k])["rougeLsum"] for t, k in pairs]) * 100
        assert result.scores["sari"] == np.mean([sentence_sari(srcs[k], t, [refs[k]]) for t, k in pairs])
        assert [r["case_id"] for r in result.per_case] == order
        assert "overall_score" not in result.scores  # only three of six metrics
        assert result.scores["overall_partial_metrics"] == ["bleu", "rougeLsum", "sari"]


def test_st3_multiline_answer_kept_and_long_answer_truncated():
    cases = _cases()[:1]
    ref = cases[0].answer
    multi = "A chest tube drained\nthe infected fluid."
    got = score(3, _entries({"11": multi}), cases, metrics="rouge").per_case[0]
    assert got["rougeLsum"] == sentence_rouge(multi, ref)["rougeLsum"] * 100  # newline kept: two sentences
    words = [f"w{i}" for i in range(80)]
    long = "\n".join(words[:40]) + "\n" + " ".join(words[40:])
    got = score(3, _entries({"11": long}), cases, metrics="rouge,bleu").per_case[0]
    truncated = " ".join(words[:75])  # 75 words joined by single spaces: the newlines vanish
    assert got["rougeLsum"] == sentence_rouge(truncated, ref)["rougeLsum"] * 100
    assert got["rougeL"] == got["rougeLsum"]


def test_st1_uses_clinician_question_and_15_words():
    cases = _cases()[:1]
    pred = "Why was treatment 11 given? " + "extra " * 20
    got = score(1, _entries({"11": pred}), cases, metrics="rouge").per_case[0]
    truncated = " ".join(pred.split()[:15])
    assert got["rouge1"] == sentence_rouge(truncated, "Why was treatment 11 given?")["rouge1"] * 100


@pytest.mark.parametrize(
    ("prediction", "message"),
    [("   \n ", "empty"), (["a list"], "must be a string"), (None, "must be a string")],
)
def test_st3_invalid_predictions(prediction, message):
    with pytest.raises(DataError, match=message):
        score_submission(3, [{"case_id": "11", "prediction": prediction}], _cases()[:1], metrics="bleu")


def test_unknown_metric_is_an_error():
    with pytest.raises(DataError, match="unknown metric"):
        score_submission(3, _entries(PREDS), _cases(), metrics="bleu,meteor")


def test_st3_needs_reference_answers():
    cases = [c.input_for(4) for c in _cases()]
    with pytest.raises(DataError, match="no reference"):
        score_submission(3, _entries(PREDS), cases, metrics="bleu")


def test_text_bootstrap_and_signature():
    got = score_submission(3, _entries(PREDS), _cases(), metrics="bleu,sari", bootstrap=100)
    lo, hi = got["ci95"]["sari"]
    assert lo <= got["sari"] <= hi
    assert got["signature"].startswith("ehrqa:")
    assert "tok13a" in got["signature"] and "n:4" in got["signature"]
