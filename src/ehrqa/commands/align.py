"""``ehrqa align``: evidence alignment (ST4) -> submission.json (+ .zip)."""

from __future__ import annotations

import argparse

from ehrqa.commands._common import add_prediction_arguments, run_one_subtask

HELP = "evidence alignment (ST4): link each answer sentence to the note sentences that support it"
DESCRIPTION = (
    "Read cases whose key gives clinician_answer_sentences (citations, if any, are ignored), link every answer "
    "sentence to the note sentences that support it, and write the ST4 submission. --method aligner (default) "
    "uses the aligner model; --method llm asks chat models for all links of a case in one JSON reply "
    "(samples and models vote)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ehrqa.commands._llm_args import add_evidence_method_arguments
    from ehrqa.tasks.align import AlignConfig

    add_prediction_arguments(parser)
    add_evidence_method_arguments(parser, AlignConfig)


def run(args: argparse.Namespace) -> int:
    from ehrqa.commands._common import selected_cases
    from ehrqa.commands._llm_args import evidence_config
    from ehrqa.errors import DataError
    from ehrqa.tasks.align import AlignConfig

    missing = [c.id for c in selected_cases(args) if not c.answer_sentences]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(f"ST4 needs clinician_answer_sentences in the key; missing for case(s) {shown}")
    config, backend = evidence_config(args, AlignConfig)
    row = run_one_subtask(args, 4, config, backend)
    n_links = sum(len(a["evidence_id"]) for v in row["predictions"].values() for a in v)
    print(f"ST4: {n_links} links for {len(row['predictions'])} cases -> {row['out']}")
    return 0
