"""Open corpora bundled with ehrqa (MedQuAD, MeQSum), read as plain records.

Each bundled corpus lives in ``ehrqa/resources/corpora/<name>/`` with its licence
and attribution. Readers yield dicts and never touch the network.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

CORPORA_DIR = Path(__file__).resolve().parent.parent / "resources" / "corpora"


def _jsonl_gz(path: Path) -> Iterator[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def read_medquad(path: str | Path | None = None) -> Iterator[dict]:
    """MedQuAD pairs with answers: ``subset, doc_id, source, url, focus, qid, qtype, question, answer``."""
    return _jsonl_gz(Path(path) if path else CORPORA_DIR / "medquad" / "medquad_answered.jsonl.gz")


def read_meqsum(path: str | Path | None = None) -> Iterator[dict]:
    """MeQSum: ``File, CHQ`` (consumer question), ``Summary`` (expert one-line question)."""
    return _jsonl_gz(Path(path) if path else CORPORA_DIR / "meqsum" / "meqsum.jsonl.gz")
