"""``ehrqa identify``: evidence identification (ST2) -> submission.json (+ .zip)."""

from __future__ import annotations

import argparse

from ehrqa.commands._common import add_prediction_arguments, run_one_subtask

HELP = "evidence identification (ST2): pick the note sentences essential to the question"
DESCRIPTION = (
    "Choose the note sentences essential to answer each case's question and write the ST2 submission. "
    "--method aligner (default) scores sentences with the aligner model; --method llm asks a chat model "
    "(samples vote). Reads the XML only: relevance labels of the cases are never used."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ehrqa.commands._llm_args import add_evidence_method_arguments
    from ehrqa.tasks.identify import IdentifyConfig

    add_prediction_arguments(parser)
    add_evidence_method_arguments(parser, IdentifyConfig)


def run(args: argparse.Namespace) -> int:
    from ehrqa.commands._llm_args import evidence_config
    from ehrqa.tasks.identify import IdentifyConfig

    config, backend = evidence_config(args, IdentifyConfig)
    row = run_one_subtask(args, 2, config, backend)
    n_ids = sum(len(v) for v in row["predictions"].values())
    print(f"ST2: {n_ids} evidence sentences for {len(row['predictions'])} cases -> {row['out']}")
    return 0
