"""Case model, official file I/O, submissions, corpora and the bundled sample."""

from ehrqa.data.archehr import read_dataset, read_key, read_xml, sample_dir, write_key, write_xml
from ehrqa.data.case import AnswerSentence, Case, NoteSentence, QuestionPhrase

__all__ = [
    "AnswerSentence",
    "Case",
    "NoteSentence",
    "QuestionPhrase",
    "read_dataset",
    "read_key",
    "read_xml",
    "sample_dir",
    "write_key",
    "write_xml",
]
