"""ehrqa: grounded question answering over clinical notes (ArchEHR-QA 2026).

The public API is small: read cases, run a subtask's ``predict``, write and score
submissions. Heavy libraries (torch, transformers) are imported only when a stage needs them.
"""

from ehrqa import _library_noise
from ehrqa.data.archehr import read_dataset, read_key, read_xml, sample_dir, write_key, write_xml
from ehrqa.data.case import AnswerSentence, Case, NoteSentence, QuestionPhrase
from ehrqa.data.submission import build_submission, check_submission, read_submission, write_submission
from ehrqa.errors import DataError

_library_noise.install()

__version__ = "0.1.0"


def __getattr__(name: str):
    """``ehrqa.answer(note, question)`` and ``ehrqa.Answer``, imported on first use so that
    ``import ehrqa`` stays light. ``ehrqa.answer`` is the module :mod:`ehrqa.answer`, which is
    callable (calling it calls :func:`ehrqa.answer.answer`): Python binds a package's submodule
    to the package attribute of the same name whenever it is imported, so a plain function
    there would be replaced by the module as soon as anything imported ``ehrqa.answer``."""
    if name in ("answer", "Answer"):
        import importlib

        module = importlib.import_module("ehrqa.answer")
        return module if name == "answer" else module.Answer
    raise AttributeError(f"module 'ehrqa' has no attribute {name!r}")


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
