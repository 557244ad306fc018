"""Answer one question from one plain-text note: ST2 -> ST3 -> ST4, every answer sentence cited.

``ehrqa.answer(note_text, question)`` (and ``ehrqa answer --note FILE --question ...``) is the
whole system for a user who has a note rather than an ArchEHR-QA dataset:

1. the note is split into numbered sentences (:func:`ehrqa.data.plain.case_from_text`);
   when its evidence scores say the note does not answer the question at all, the answer is one
   plain sentence saying so, citing nothing (:mod:`ehrqa.retrieval.answerable`), and no step runs;
2. ST2 picks the note sentences that matter for the question (``evidence``); by the shipped
   aligner it uses the abstention check's loaded model, which remembers its scores, so without a
   narrative (the same input) the note is scored once;
3. ST3 writes the answer;
4. ST4 links each answer sentence to the note sentences that support it (its ``citations``).

Each step uses the recipe's method for its subtask (the step the recipe submits for that
subtask). Without a recipe, or for a subtask the recipe lacks, the CPU default is used: ST2 and
ST4 by the shipped aligner, ST3 by the grounded extractive answer (note sentences ranked by the
ST2 model, :mod:`ehrqa.retrieval.extractive`), here only those whose evidence score clears the
abstention bar, never padded to 75 words. An extractive answer sentence also cites the note
sentence it was taken from. Steps that use the same aligner directory share one loaded model
(:func:`ehrqa.tasks.base.shared_aligner`).

The steps run through the pipeline's step runner (:func:`ehrqa.runs.pipeline.run_step`), in memory
unless ``out`` names a run directory; then every step's records, the reply cache and the case itself
(``data/archehr-qa.xml``) go there, so a repeated call answers from the records and ``ehrqa view``
can show the result. ``ehrqa.answer`` is this module's :func:`answer`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ehrqa.data.case import AnswerSentence, Case, NoteSentence
from ehrqa.data.submission import links_from_prediction

CASE_ID = "1"
DEFAULT_BACKEND = "default"


@dataclass(frozen=True)
class Citation:
    """A cited note sentence: its number in the note and its text."""

    id: str
    text: str


@dataclass(frozen=True)
class CitedSentence:
    """One answer sentence and the note sentences supporting it (empty: no support found)."""

    id: str
    text: str
    citations: tuple[Citation, ...] = ()


@dataclass(frozen=True)
class Answer:
    question: str
    text: str  # the whole answer (ST3)
    sentences: tuple[CitedSentence, ...]  # the answer, sentence by sentence, with citations (ST4)
    evidence: tuple[str, ...]  # ST2: ids of the note sentences chosen as evidence
    note: tuple[NoteSentence, ...]  # the numbered note sentences
    methods: dict[str, str] = field(default_factory=dict)  # {"st2": "aligner", "st3": ..., "st4": ...}
    seconds: float = 0.0
    run_dir: str | None = None
    # abstention (ehrqa.retrieval.answerable): False when the note does not answer the question;
    # the evidence score that decided it and the bar it was compared with
    answerable: bool = True
    evidence_score: float | None = None
    evidence_bar: float | None = None

    @property
    def cited_ids(self) -> list[str]:
        """Every cited note sentence id, once, in note order."""
        cited = {c.id for s in self.sentences for c in s.citations}
        return [s.id for s in self.note if s.id in cited]

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "answer": self.text,
            "sentences": [
                {"id": s.id, "text": s.text, "citations": [{"id": c.id, "text": c.text} for c in s.citations]}
                for s in self.sentences
            ],
            "evidence": list(self.evidence),
            "note": [{"id": s.id, "text": s.text} for s in self.note],
            "methods": dict(self.methods),
            "answerable": self.answerable,
            "evidence_score": self.evidence_score,
            "evidence_bar": self.evidence_bar,
            "seconds": self.seconds,
            **({"run_dir": self.run_dir} if self.run_dir else {}),
        }

    def format(self) -> str:
        """The answer with ``[3, 5]`` after each sentence, then the cited note sentences."""
        lines = ["Answer:"]
        if not self.answerable:  # abstention: one plain sentence, nothing cited
            lines += [f"  {self.text}", ""]
            lines.append(f"(evidence score {self.evidence_score:.3f} is below the bar {self.evidence_bar:.3f})")
            lines.append(f"({len(self.note)} note sentences; {self.seconds:.1f} s)")
            return "\n".join(lines)
        for s in self.sentences:
            mark = f"[{', '.join(c.id for c in s.citations)}]" if s.citations else "[no supporting note sentence]"
            lines.append(f"  {s.text} {mark}")
        by_id = {s.id: s for s in self.note}
        cited = self.cited_ids
        lines.append("")
        lines.append("Cited note sentences:" if cited else "Cited note sentences: none")
        for sid in cited:
            lines.append(f"  [{sid}] {' '.join(by_id[sid].text.split())}")
        methods = ", ".join(f"{k.upper()} {v}" for k, v in self.methods.items())
        lines.append("")
        if self.evidence_score is not None:
            lines.append(f"(evidence score {self.evidence_score:.3f}, bar {self.evidence_bar:.3f})")
        lines.append(f"({len(self.note)} note sentences; {methods}; {self.seconds:.1f} s)")
        return "\n".join(lines)


def answer(
    note_text: str,
    question: str,
    narrative: str | None = None,
    recipe=None,
    *,
    out: str | Path | None = None,
    force: bool = False,
) -> Answer:
    """Answer ``question`` from ``note_text`` with cited sentences (see the module docstring).

    ``recipe``: a :class:`~ehrqa.runs.config.RunRecipe`, a recipe file or shipped name, or None
    for the CPU default. Empty notes and questions are a one-line :class:`~ehrqa.errors.DataError`.
    """
    from ehrqa.data.plain import case_from_text
    from ehrqa.errors import DataError
    from ehrqa.runs.config import RunRecipe, load_recipe
    from ehrqa.runs.pipeline import open_run, run_step
    from ehrqa.tasks.base import Records

    if not isinstance(question, str) or not question.strip():
        raise DataError("question: empty question")
    started = time.perf_counter()
    case = case_from_text(CASE_ID, note_text, question, narrative, where="note")
    if recipe is not None and not isinstance(recipe, RunRecipe):
        recipe = load_recipe(str(recipe))
    plan = _plan(recipe)
    rundir = open_run(plan, [case], out, data={"name": "answer"}, force=force) if out is not None else None
    records = {s.name: rundir.step(s.name) if rundir is not None else Records() for s in plan.steps}
    outputs: dict[str, dict] = {}

    def step(name: str, cases: list[Case]):
        row = run_step(plan.step(name), cases, plan, outputs, rundir, records[name])
        if row["status"] != "ok":
            why = "; ".join(row.get("reasons") or ()) or row["status"]
            raise DataError(f"ehrqa answer: ST{row['subtask']} ({row['method']}) failed: {why}")
        return outputs[name][CASE_ID]

    from ehrqa.retrieval.answerable import judge

    verdict = judge(case)  # does the note answer the question at all? (by the shipped aligner, shared_aligner())
    if not verdict.answerable:
        return _abstention(case, question, verdict, rundir, records["st3"], started)
    evidence = step("st2", [case])
    if plan.step("st3").config.method == "extractive":  # no padding: only sentences that clear the bar
        outputs["st2"] = {CASE_ID: list(verdict.supported)}  # what the extractive answer reads (_plan)
    answer_text = step("st3", [case])
    st3_record = dict(records["st3"].by_case.get(CASE_ID, {}))
    drafted = _answer_sentences(answer_text, st3_record)
    links = step("st4", [dataclasses.replace(case, answer_sentences=drafted)])
    sentences = _cited(case, drafted, links, st3_record, plan.step("st3").config.method == "extractive")
    if rundir is not None:
        _save_cited(records["st3"], st3_record, sentences)
    return Answer(
        question=case.clinician_question or question,
        text=answer_text,
        sentences=sentences,
        evidence=tuple(evidence),
        note=case.sentences,
        methods={s.name: s.config.method for s in plan.steps},
        seconds=round(time.perf_counter() - started, 2),
        run_dir=str(rundir.path) if rundir is not None else None,
        evidence_score=verdict.score,
        evidence_bar=verdict.bar,
    )


def _abstention(case: Case, question: str, verdict, rundir, st3_records, started: float) -> Answer:
    """The answer when the note does not answer the question: one plain sentence, nothing cited.
    With a run directory it is the ST3 record, so ``ehrqa view`` shows it."""
    from ehrqa.retrieval.answerable import ABSTENTION

    if rundir is not None:
        st3 = {"case_id": CASE_ID, "prediction": ABSTENTION, "status": "ok", "answerable": False}
        st3_records.write({**st3, "evidence_score": verdict.score, "answer_sentences": []})
        st3_records.mark_done()
        st3_records.close()
    return Answer(
        question=case.clinician_question or question,
        text=ABSTENTION,
        sentences=(CitedSentence("1", ABSTENTION),),
        evidence=(),
        note=case.sentences,
        seconds=round(time.perf_counter() - started, 2),
        run_dir=str(rundir.path) if rundir is not None else None,
        answerable=False,
        evidence_score=verdict.score,
        evidence_bar=verdict.bar,
    )


# ---------------------------------------------------------------- which methods


def _plan(recipe):
    """The run of one answer: the ST2, ST3 and ST4 steps the recipe submits (else the CPU default),
    with the recipe's backends (plus the shipped SmolLM2 for an LLM answer without one) and seed."""
    from ehrqa.llm.backend import BackendSpec
    from ehrqa.runs.config import RunRecipe, StepSpec
    from ehrqa.tasks.align import AlignConfig
    from ehrqa.tasks.generate import GenerateConfig
    from ehrqa.tasks.identify import IdentifyConfig

    defaults = {
        2: IdentifyConfig(method="aligner"),
        3: GenerateConfig(method="extractive"),
        4: AlignConfig(method="aligner"),
    }
    recipe = recipe if recipe is not None else RunRecipe()
    steps = []
    for subtask, config in defaults.items():
        given = [s for s in recipe.steps if s.subtask == subtask and s.submit]
        config = given[0].config if given else config
        if subtask == 3 and config.evidence and config.evidence != "st2":
            config = dataclasses.replace(config, evidence="st2")  # the only ST2 step here is "st2"
        if subtask == 3 and config.method == "extractive":  # it reads the sentences over the bar
            config = dataclasses.replace(config, evidence="st2")
        steps.append(StepSpec(subtask, f"st{subtask}", config))
    backends = dict(recipe.backends)
    st3 = steps[1].config
    if st3.method == "llm" and st3.backend not in backends:
        backends[st3.backend] = BackendSpec(kind="hf")  # the shipped SmolLM2
    return RunRecipe(name="answer", seed=recipe.seed, backends=backends, steps=tuple(steps))


# ---------------------------------------------------------------- answer sentences and citations


def _answer_sentences(answer_text: str, st3_record: dict) -> tuple[AnswerSentence, ...]:
    """The answer split into numbered sentences: the ST3 method's own split when it recorded one."""
    from ehrqa.text import split_sentences

    recorded = st3_record.get("answer_sentences")
    if isinstance(recorded, list) and recorded and all(isinstance(a, dict) and a.get("text") for a in recorded):
        texts = [str(a["text"]) for a in recorded]
    else:
        texts = split_sentences(answer_text) or [answer_text.strip()]
    return tuple(AnswerSentence(str(i), text, None) for i, text in enumerate(texts, 1) if text.strip())


def _cited(
    case: Case, drafted: Sequence[AnswerSentence], links: list, st3_record: dict, extractive: bool
) -> tuple[CitedSentence, ...]:
    """Each answer sentence with its ST4 links, plus (extractive answers) the note sentence it came from."""
    by_answer = links_from_prediction(links)
    own = {}
    for a in st3_record.get("answer_sentences") if extractive else ():
        if isinstance(a, dict):
            own[str(a.get("id"))] = [str(c) for c in a.get("citations") or ()]
    by_id = {s.id: s for s in case.sentences}
    order = {s.id: j for j, s in enumerate(case.sentences)}
    out = []
    for a in drafted:
        ids = {i for i in by_answer.get(a.id, []) + own.get(a.id, []) if i in by_id}
        citations = tuple(Citation(i, by_id[i].text) for i in sorted(ids, key=order.__getitem__))
        out.append(CitedSentence(a.id, a.text, citations))
    return tuple(out)


def _save_cited(records, st3_record: dict, sentences: Sequence[CitedSentence]) -> None:
    """Rewrite the ST3 record with the cited answer, as the viewer reads it (last record wins)."""
    cited = [
        {"id": s.id, "text": s.text, "citations": [c.id for c in s.citations], "supported": bool(s.citations)}
        for s in sentences
    ]
    try:
        records.write({**st3_record, "answer_sentences": cited})
    finally:
        records.close()
