"""Scoring speed on official-size splits of synthetic cases (no patient data).

ST4 on 147 cases and ST2 on 47 cases (targets: under 1 s each), ST3 BLEU+ROUGE+SARI on
47 cases (under 2 s), and ST3 with the stand-ins (bertscore_proxy, medcon_proxy; under 60 s).
Each line gives the in-process time of ``score_submission`` (validation included) and the
wall time of the same ``ehrqa score`` command in a fresh process (start-up included).

    .venv/bin/python benchmarks/bench_score.py
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ehrqa import AnswerSentence, Case, NoteSentence, build_submission, write_key, write_submission, write_xml
from ehrqa.score import score_submission

WORDS = (
    "patient admitted chest pain troponin elevated cardiac catheterization stent placed artery fever pneumonia "
    "antibiotics chest tube pleural effusion drained culture negative discharged home follow up clinic blood "
    "pressure metformin insulin glucose kidney function creatinine improved heart failure diuretics swelling legs "
    "shortness breath oxygen saturation scan showed no bleeding stroke aspirin started rehabilitation"
).split()


def _text(rng: random.Random, n_words: int) -> str:
    words = rng.choices(WORDS, k=n_words)
    out, start = [], 0
    while start < n_words:
        end = min(n_words, start + rng.randint(8, 18))
        out.append(" ".join(words[start:end]).capitalize() + ".")
        start = end
    return " ".join(out)


def make_cases(n: int, seed: int = 0) -> list[Case]:
    """Cases shaped like the official ones: 15-55 note sentences, 3-8 cited answer sentences."""
    rng = random.Random(seed)
    cases = []
    for i in range(n):
        n_sent = rng.randint(15, 55)
        sentences = tuple(NoteSentence(str(s), _text(rng, rng.randint(6, 30)), "1") for s in range(1, n_sent + 1))
        ids = [s.id for s in sentences]
        labels = rng.choices(["essential", "supplementary", "not-relevant"], weights=[2, 1, 5], k=n_sent)
        answer_sentences = tuple(
            AnswerSentence(str(a), _text(rng, rng.randint(10, 20)), tuple(rng.sample(ids, rng.randint(0, 3))))
            for a in range(1, rng.randint(3, 8) + 1)
        )
        cases.append(
            Case(
                id=str(121 + i),
                narrative=_text(rng, rng.randint(40, 160)),
                sentences=sentences,
                clinician_question=_text(rng, 12),
                relevance=tuple(zip(ids, labels, strict=True)),
                answer=" ".join(a.text for a in answer_sentences),
                answer_sentences=answer_sentences,
            )
        )
    return cases


def make_predictions(subtask: int, cases: list[Case], seed: int = 1) -> dict:
    rng = random.Random(seed)
    preds: dict = {}
    for c in cases:
        ids = list(c.known_sentence_ids)
        if subtask == 2:
            preds[c.id] = rng.sample(ids, rng.randint(0, min(10, len(ids))))
        elif subtask == 4:
            preds[c.id] = [
                {"answer_id": a.id, "evidence_id": rng.sample(ids, rng.randint(0, 3))} for a in c.answer_sentences
            ]
        else:
            preds[c.id] = _text(rng, rng.randint(50, 75))
    return preds


def bench(label: str, subtask: int, n: int, metrics: str | None, tmp: Path) -> None:
    cases = make_cases(n)
    entries = build_submission(subtask, make_predictions(subtask, cases), cases)
    t = time.perf_counter()
    result = score_submission(subtask, entries, cases, metrics=metrics)
    in_process = time.perf_counter() - t
    data = tmp / f"data{n}"
    if not data.exists():
        data.mkdir()
        write_xml(cases, data / "archehr-qa.xml")
        write_key(cases, data / "archehr-qa_key.json")
    sub = write_submission(entries, tmp / f"st{subtask}-{n}" / "submission.json")
    cmd = [
        str(Path(sys.executable).with_name("ehrqa")),
        "score",
        "--subtask",
        str(subtask),
        "--submission",
        str(sub),
        "--data",
        str(data),
    ]
    if metrics:
        cmd += ["--metrics", metrics]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    cli = time.perf_counter() - t
    headline = result.get("overall_score", result.get("overall_partial"))
    print(f"{label:<44} {n:>4} cases  in-process {in_process:7.3f} s   ehrqa score {cli:7.3f} s   score {headline:.2f}")


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("EHRQA_NO_PROGRESS", "1")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bench("ST4 micro/macro P/R/F", 4, 147, None, tmp)
        bench("ST2 strict/lenient P/R/F", 2, 47, None, tmp)
        bench("ST3 BLEU+ROUGE+SARI", 3, 47, "bleu,rouge,sari", tmp)
        from ehrqa.score.medcon import proxy_index

        t = time.perf_counter()
        proxy_index()
        print(f"MEDCON proxy index ready (built or cached) in {time.perf_counter() - t:.1f} s")
        bench("ST3 all metrics, stand-ins (no AlignScore)", 3, 47, None, tmp)


if __name__ == "__main__":
    main()
