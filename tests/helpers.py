"""Small invented cases built in code, for tests that must not depend on the bundled sample."""

from __future__ import annotations

from ehrqa.data.case import AnswerSentence, Case, NoteSentence, QuestionPhrase
from ehrqa.llm.backend import ChatBackend


def make_case(case_id: str = "7", n_sentences: int = 4, first_id: int = 1) -> Case:
    texts = [f"Sentence {i} of the note, with ° and µg." for i in range(first_id, first_id + n_sentences)]
    starts = [sum(len(t) + 1 for t in texts[:k]) for k in range(len(texts))]  # one paragraph, "\n"-joined
    sentences = tuple(
        NoteSentence(str(i), text, "1", start, len(text))
        for i, text, start in zip(range(first_id, first_id + n_sentences), texts, starts, strict=True)
    )
    ids = [s.id for s in sentences]
    labels = ["essential", "supplementary", "not-relevant"]
    return Case(
        id=case_id,
        narrative="My mother was admitted with chest pain. Why did she need a stent?",
        sentences=sentences,
        specialty="Cardiology",
        question_phrases=(QuestionPhrase("0", "Why did she need a stent?", 40),),
        clinician_question="Why was a coronary stent placed?",
        note_excerpt="\n".join(s.text for s in sentences),
        relevance=tuple((sid, labels[k % 3]) for k, sid in enumerate(ids)),
        answer="She had a blocked artery. A stent opened it.",
        answer_sentences=(
            AnswerSentence("1", "She had a blocked artery.", (ids[0],)),
            AnswerSentence("2", "A stent opened it.", ()),
        ),
    )


def make_cases() -> list[Case]:
    return [make_case("7"), make_case("12", n_sentences=6, first_id=0)]


class ScriptedBackend(ChatBackend):
    """A chat backend that answers from a function of the messages (or a list, in order) and
    remembers every request; usable wherever an ``ehrqa.llm.backend.ChatBackend`` is."""

    def __init__(self, replies) -> None:
        self.replies = replies
        self.requests = []
        self.description = {"backend": "scripted"}

    def complete(self, requests, on_reply=None):
        from ehrqa.llm.backend import Reply

        out = []
        for i, request in enumerate(requests):
            self.requests.append(request)
            if callable(self.replies):
                text = self.replies(request)
            else:
                text = self.replies[(len(self.requests) - 1) % len(self.replies)]
            reply = text if isinstance(text, Reply) else Reply(text, prompt_tokens=10, completion_tokens=5)
            out.append(reply)
            if on_reply is not None:
                on_reply(i, reply)
        return out

    def close(self) -> None:
        pass
