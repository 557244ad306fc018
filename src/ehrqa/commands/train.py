"""``ehrqa train aligner|generator``: the two trainable models.

Each kind lives in its own module (``_train_aligner``, ``_train_generator``) with
``HELP``, ``add_arguments`` and ``run``.
"""

from __future__ import annotations

import argparse
import importlib

HELP = "train a model: the evidence aligner (ST2/ST4) or the answer generator (ST3)"
KINDS = {"aligner": "ehrqa.commands._train_aligner", "generator": "ehrqa.commands._train_generator"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, module_name in KINDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(kind, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP))
        module.add_arguments(p)
        p.set_defaults(_run=module.run)


def run(args: argparse.Namespace) -> int:  # never called: each kind sets its own run (the kind is required)
    raise NotImplementedError
