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


def add_backend_arguments(parser: argparse.ArgumentParser, *, default_model: str) -> None:
    """The chat-model arguments shared by commands that call a language model."""
    m = parser.add_argument_group("model")
    m.add_argument("--backend", choices=["hf", "openai"], default="hf", help="local transformers or an HTTP server")
    m.add_argument("--model", metavar="ID_OR_DIR",
                   help=f"hf: model id or directory (default: {default_model}); "
                        "openai: the model name the server serves")  # fmt: skip
    m.add_argument("--adapter", metavar="DIR", help="hf: LoRA adapter directory (from ehrqa train generator)")
    m.add_argument("--load-in-4bit", action="store_true", help="hf: load the base model in 4-bit NF4")
    m.add_argument("--batch-size", type=int, default=4, help="hf: prompts per generate() call (default: 4)")
    m.add_argument("--base-url", metavar="URL", help="openai: server URL ending in /v1 (e.g. http://127.0.0.1:8000/v1)")
    m.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="NAME",
                   help="openai: environment variable holding the API key (default: OPENAI_API_KEY)")  # fmt: skip
    m.add_argument("--concurrency", type=int, default=4, help="openai: requests in flight at once (default: 4)")
    m.add_argument("--timeout", type=float, default=120.0, help="openai: seconds per request (default: 120)")
    m.add_argument("--retries", type=int, default=3, help="openai: retries per request (default: 3)")


def backend_from_args(args: argparse.Namespace):
    """A chat backend built from :func:`add_backend_arguments`' flags; bad flags are a one-line error."""
    from ehrqa.errors import DataError
    from ehrqa.llm.backend import make_backend

    try:
        return make_backend(
            args.backend, model=args.model, adapter=args.adapter, load_in_4bit=args.load_in_4bit,
            batch_size=args.batch_size, base_url=args.base_url, api_key_env=args.api_key_env,
            timeout=args.timeout, retries=args.retries, concurrency=args.concurrency,
        )  # fmt: skip
    except ValueError as e:
        raise DataError(str(e)) from None


def add_prediction_arguments(parser: argparse.ArgumentParser) -> None:
    """Dataset flags plus ``--out FILE`` and ``--cases IDS`` for commands that write a submission."""
    add_data_arguments(parser)
    parser.add_argument("--out", required=True, metavar="FILE", help="submission.json to write (a .zip is written too)")
    parser.add_argument("--cases", nargs="+", metavar="IDS", help="only these case ids, e.g. 21-30 45")


def load_inputs(args: argparse.Namespace):
    """The cases a predictor may see (gold removed: ``Case.without_gold``), limited to ``--cases``."""
    cases = [c.without_gold() for c in load_cases(args)]
    wanted = parse_case_ids(args.cases)
    if wanted is None:
        return cases
    from ehrqa.errors import DataError

    known = {c.id for c in cases}
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise DataError(f"--cases: not in the dataset: {', '.join(unknown[:8])}")
    return [c for c in cases if c.id in set(wanted)]
