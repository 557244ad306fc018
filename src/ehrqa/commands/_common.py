"""Argument helpers shared by commands."""

from __future__ import annotations

import argparse


def add_data_arguments(parser: argparse.ArgumentParser, *, default_sample: bool = True) -> None:
    """``--data DIR`` or ``--xml FILE [--key FILE]``; the bundled sample when none is given."""
    g = parser.add_argument_group("dataset")
    hint = " (default: the bundled sample)" if default_sample else ""
    g.add_argument("--data", metavar="DIR", help=f"directory holding archehr-qa.xml [and archehr-qa_key.json]{hint}")
    g.add_argument("--xml", metavar="FILE", help="path to archehr-qa.xml")
    g.add_argument("--key", metavar="FILE", help="path to archehr-qa_key.json")


def load_cases(args: argparse.Namespace, *, require_xml: bool = True):
    from ehrqa.data.archehr import read_dataset

    return read_dataset(args.data, xml=args.xml, key=args.key, require_xml=require_xml)


def parse_case_ids(specs: list[str] | None) -> list[str] | None:
    """The official range syntax: ``1-3 5 7-9`` (also comma-separated) -> ids as strings."""
    if not specs:
        return None
    ids: list[str] = []
    for spec in specs:
        for part in spec.replace(",", " ").split():
            lo, dash, hi = part.partition("-")
            if dash and lo.isdigit() and hi.isdigit():
                ids.extend(str(i) for i in range(int(lo), int(hi) + 1))
            else:
                ids.append(part)
    return list(dict.fromkeys(ids))
