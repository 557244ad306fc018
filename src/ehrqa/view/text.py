"""Plain-text views of cases for people: a one-line list and a full case page."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from ehrqa.data.case import Case
from ehrqa.text import word_count

MARKS = {"essential": "E", "supplementary": "s", "not-relevant": " "}


def format_case_list(cases: Sequence[Case]) -> str:
    lines = [f"{'case':>6}  {'specialty':<20} {'sent':>4} {'ess':>4}  clinician question"]
    for c in cases:
        question = c.clinician_question or "-"
        ess = str(len(c.essential_ids)) if c.relevance is not None else "-"
        lines.append(f"{c.id:>6}  {(c.specialty or '-')[:20]:<20} {len(c.sentences):>4} {ess:>4}  {question}")
    return "\n".join(lines)


def format_case(case: Case, gold: bool = True, width: int = 100) -> str:
    wrap = textwrap.TextWrapper(width=width, subsequent_indent="      ")
    out = [f"Case {case.id}" + (f" · {case.specialty}" if case.specialty else ""), ""]
    out.append("Patient narrative:")
    out.extend(textwrap.wrap(case.narrative, width=width, initial_indent="  ", subsequent_indent="  "))
    if case.question_phrases:
        out.append("Patient question: " + case.patient_question)
    if case.clinician_question:
        label = "Question (input)" if case.question_is_input else "Clinician question"
        out.append(f"{label}: {case.clinician_question}")
    labels = dict(case.relevance or ()) if gold else {}
    out += ["", "Note (E = essential, s = supplementary):" if labels else "Note:"]
    paragraph = None
    for s in case.sentences:
        if paragraph is not None and s.paragraph_id != paragraph:
            out.append("")
        paragraph = s.paragraph_id
        mark = MARKS.get(labels.get(s.id, ""), " ")
        out.append(wrap.fill(f"{mark} {s.id:>3} " + " ".join(s.text.split())))
    if gold and case.answer_sentences:
        out += ["", f"Clinician answer ({word_count(case.answer or '')} words):"]
        for a in case.answer_sentences:
            cites = "" if a.citations is None else " |" + ",".join(a.citations) + "|"
            out.append(wrap.fill(f"  {a.id:>3} {a.text}{cites}"))
    elif gold and case.answer:
        out += ["", "Clinician answer:"] + textwrap.wrap(case.answer, width=width, initial_indent="  ")
    return "\n".join(out)
