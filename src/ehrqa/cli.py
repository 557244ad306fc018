"""The ``ehrqa`` command: argument parsing only; the work is done by the library.

Each command is a module in :mod:`ehrqa.commands` with ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``. Modules are found automatically and must import heavy
libraries (torch, transformers) inside ``run`` so that start-up stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from ehrqa import __version__
from ehrqa.errors import DataError

# Order in --help; commands not listed come after, alphabetically.
ORDER = ["demo", "validate", "show", "score", "interpret", "identify", "generate", "align", "train"]


def _command_modules() -> list:
    import ehrqa.commands as pkg

    names = [m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")]
    names.sort(key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    return [importlib.import_module(f"ehrqa.commands.{n}") for n in names]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ehrqa",
        description="Grounded question answering over clinical notes (ArchEHR-QA 2026).",
    )
    parser.add_argument("--version", action="version", version=f"ehrqa {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details (never note text)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors; no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        name = module.__name__.rsplit(".", 1)[1]
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP))
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    level = logging.ERROR if args.quiet else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="ehrqa: %(levelname)s: %(message)s")
    if not args.verbose:
        # bitsandbytes warns on every CPU import that an optional Hub kernel is missing; its
        # built-in CPU code is used instead, so the warning only alarms users.
        logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    if args.quiet:
        import os

        os.environ["EHRQA_NO_PROGRESS"] = "1"
    try:
        return int(args._run(args) or 0)
    except DataError as e:
        print(f"ehrqa: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ehrqa: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
