"""The one data model every stage reads: an immutable ArchEHR-QA case.

All ids (case, sentence, phrase, answer sentence) are strings, exactly as in the
official files. Gold fields are ``None`` when a file does not carry them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

RELEVANCE_LABELS = ("essential", "supplementary", "not-relevant")


@dataclass(frozen=True)
class NoteSentence:
    id: str
    text: str
    paragraph_id: str | None = None
    start: int | None = None  # offset within its paragraph
    length: int | None = None


@dataclass(frozen=True)
class QuestionPhrase:
    id: str
    text: str
    start: int | None = None  # offset within the patient narrative


@dataclass(frozen=True)
class AnswerSentence:
    id: str
    text: str
    citations: tuple[str, ...] | None = None  # None: not given (ST4 test input)


@dataclass(frozen=True)
class Case:
    id: str
    narrative: str
    sentences: tuple[NoteSentence, ...] = ()
    specialty: str | None = None
    question_phrases: tuple[QuestionPhrase, ...] = ()
    clinician_question: str | None = None
    note_excerpt: str | None = None
    # gold from the key file
    relevance: tuple[tuple[str, str], ...] | None = None  # (sentence id, label) in file order
    answer: str | None = None  # clinician_answer_without_citations
    answer_sentences: tuple[AnswerSentence, ...] | None = None
    # True when clinician_question is the user's own question (ehrqa convert, ehrqa answer): input to
    # ST2-ST4, never the ST1 gold. In the XML: <clinician_question source="user">.
    question_is_input: bool = False

    @property
    def gold_question(self) -> str | None:
        """The ST1 reference: the clinician question, unless it is the user's own input."""
        return None if self.question_is_input else self.clinician_question

    @property
    def sentence_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.sentences)

    @property
    def known_sentence_ids(self) -> tuple[str, ...]:
        """Note sentence ids: from the XML, or from the relevance labels when only the key was read."""
        if self.sentences:
            return self.sentence_ids
        return tuple(sid for sid, _ in self.relevance or ())

    def sentence(self, sentence_id: str) -> NoteSentence:
        for s in self.sentences:
            if s.id == sentence_id:
                return s
        raise KeyError(f"case {self.id} has no sentence {sentence_id!r}")

    @property
    def patient_question(self) -> str:
        """The highlighted question phrases, or the whole narrative if none are marked."""
        if self.question_phrases:
            return " ".join(p.text for p in self.question_phrases)
        return self.narrative

    def ids_labelled(self, label: str) -> tuple[str, ...]:
        if self.relevance is None:
            return ()
        return tuple(sid for sid, lab in self.relevance if lab == label)

    @property
    def essential_ids(self) -> tuple[str, ...]:
        return self.ids_labelled("essential")

    @property
    def supplementary_ids(self) -> tuple[str, ...]:
        return self.ids_labelled("supplementary")

    @property
    def citation_pairs(self) -> set[tuple[str, str]]:
        """Gold ST4 links as (answer sentence id, note sentence id) pairs."""
        pairs: set[tuple[str, str]] = set()
        for a in self.answer_sentences or ():
            pairs.update((a.id, c) for c in a.citations or ())
        return pairs

    @property
    def has_key(self) -> bool:
        return self.relevance is not None or self.answer is not None or self.answer_sentences is not None

    def input_for(self, subtask: int) -> Case:
        """The case as the official test input of ``subtask`` holds it, and nothing more.

        ST1: the id and the patient narrative only. ST2 and ST3: the XML side (narrative, question
        phrases, clinician question, note) without the key. ST4: that plus the answer sentences,
        without their citations.
        """
        if subtask == 1:
            return Case(id=self.id, narrative=self.narrative)
        if subtask not in (2, 3, 4):
            raise ValueError(f"subtasks are 1-4, not {subtask!r}")
        answer_sentences = None
        if subtask == 4 and self.answer_sentences is not None:
            answer_sentences = tuple(AnswerSentence(a.id, a.text, None) for a in self.answer_sentences)
        return replace(self, relevance=None, answer=None, answer_sentences=answer_sentences)
