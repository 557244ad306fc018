"""Stage-1 data: grounded QA from the bundled MedQuAD and from SQuAD-format files in every shape."""

from __future__ import annotations

import json

import pytest

from ehrqa.data.stage1 import medquad_examples, read_squad, squad_examples, stage1_examples
from ehrqa.errors import DataError


def test_medquad_examples_are_grounded_deduplicated_and_seeded():
    examples = medquad_examples(40, seed=5, context_sentences=4, distractors=2, answer_words=50)
    assert len(examples) == 40
    assert examples == medquad_examples(40, seed=5, context_sentences=4, distractors=2, answer_words=50)
    assert [e.id for e in medquad_examples(40, seed=6, context_sentences=4, distractors=2)] != [e.id for e in examples]
    keys = {(e.question.lower(), e.answer.lower()) for e in examples}
    assert len(keys) == 40
    for e in examples:
        texts = [t for _, t in e.sentences]
        assert [sid for sid, _ in e.sentences] == [str(i) for i in range(1, len(texts) + 1)]
        assert len(e.answer.split()) <= 50
        # the answer is made of context sentences, and distractors were mixed in
        assert e.answer.startswith(next(t for t in texts if e.answer.startswith(t)))
        assert len(texts) > 2 and len(set(texts)) == len(texts)


CONTEXT_A = "The patient was admitted with pneumonia. A chest tube was placed for empyema. He improved on antibiotics."
CONTEXT_B = "Metformin was stopped before the CT scan. Her kidney function stayed normal. She went home on day two."
QAS = [
    ("q1", "Why was a chest tube placed?", CONTEXT_A, "for empyema", CONTEXT_A.index("for empyema")),
    ("q2", "Why was metformin stopped?", CONTEXT_B, "before the CT scan", CONTEXT_B.index("before the CT")),
    ("q3", "Why was metformin stopped?", CONTEXT_B, "before the CT scan", CONTEXT_B.index("before the CT")),  # dup
    ("q4", "What was the weather?", CONTEXT_B, "sunny", None),  # answer not in the context
]


def _flat_rows():
    return [
        {"id": i, "question": q, "context": c, "answers": {"text": [a], "answer_start": [s or 0]}}
        for i, q, c, a, s in QAS
    ]


@pytest.fixture(scope="module")
def squad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("squad")
    nested = {
        "version": "x",
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {"context": c, "qas": [{"id": i, "question": q, "answers": [{"text": a, "answer_start": s}]}]}
                    for i, q, c, a, s in QAS
                ],
            }
        ],
    }
    (d / "squad.json").write_text(json.dumps(nested))
    (d / "flat.jsonl").write_text("\n".join(json.dumps(r) for r in _flat_rows()) + "\n")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(_flat_rows()), d / "flat.parquet")
    from datasets import Dataset, DatasetDict

    DatasetDict({"train": Dataset.from_list(_flat_rows())}).save_to_disk(str(d / "saved"))
    return d


@pytest.mark.model
@pytest.mark.parametrize("name", ["squad.json", "flat.jsonl", "flat.parquet", "saved"])
def test_squad_formats_give_the_same_examples(squad_files, name):
    assert len(read_squad(squad_files / name)) == 4
    examples = squad_examples(squad_files / name, 10, seed=1, distractors=1)
    by_question = {e.question: e for e in examples}
    assert len(examples) == 2  # the duplicate and the unanswerable record are dropped
    tube = by_question["Why was a chest tube placed?"]
    assert tube.answer == "A chest tube was placed for empyema."
    assert "A chest tube was placed for empyema." in [t for _, t in tube.sentences]
    assert len(tube.sentences) == 4  # the three context sentences and one distractor from the other context
    reference = squad_examples(squad_files / "squad.json", 10, seed=1, distractors=1)
    assert [(e.question, e.answer) for e in examples] == [(e.question, e.answer) for e in reference]


@pytest.mark.model
def test_span_targets_and_bad_inputs(squad_files, tmp_path):
    spans = stage1_examples({"source": "squad", "path": str(squad_files / "flat.jsonl"), "target": "span"}, 10, 0)
    assert sorted(e.answer for e in spans) == ["before the CT scan", "for empyema"]
    with pytest.raises(DataError, match="not found"):
        read_squad(tmp_path / "missing.json")
    (tmp_path / "empty.jsonl").write_text(json.dumps({"question": "q", "context": "c", "answers": []}) + "\n")
    with pytest.raises(DataError, match="no usable"):
        read_squad(tmp_path / "empty.jsonl")
    with pytest.raises(DataError, match="needs a path"):
        stage1_examples({"source": "squad"}, 5, 0)
    with pytest.raises(DataError, match="unknown stage-1 source"):
        stage1_examples({"source": "pubmed"}, 5, 0)
