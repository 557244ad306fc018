"""ehrqa: grounded question answering over clinical notes (ArchEHR-QA 2026).

The public API is small: read cases, run a subtask's ``predict``, write and score
submissions, and ``answer(note_text, question)`` for a plain-text note. Heavy libraries
(torch, transformers) are imported only when a stage needs them.
"""

from ehrqa import _library_noise
from ehrqa.answering import Answer, answer
from ehrqa.data.archehr import read_dataset, read_key, read_xml, sample_dir, write_key, write_xml
from ehrqa.data.case import AnswerSentence, Case, NoteSentence, QuestionPhrase
from ehrqa.data.submission import build_submission, check_submission, read_submission, write_submission
from ehrqa.errors import DataError

_library_noise.install()

__version__ = "0.1.0"


__all__ = [
    "Answer",
    "AnswerSentence",
    "Case",
    "DataError",
    "NoteSentence",
    "QuestionPhrase",
    "__version__",
    "answer",
    "build_submission",
    "check_submission",
    "read_dataset",
    "read_key",
    "read_submission",
    "read_xml",
    "sample_dir",
    "write_key",
    "write_submission",
    "write_xml",
]
