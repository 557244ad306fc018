"""The ``ehrqa`` command: argument parsing and the one place where errors become exit codes.

Each command is a module in :mod:`ehrqa.commands` with ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``. Modules are found automatically and must import heavy
libraries (torch, transformers) inside ``run`` so that start-up stays fast.

Every failure a user can cause ends the same way: one line ``ehrqa: error: ...`` on
stderr and exit status 2 (argparse's usage errors too). A closed stdout
(``ehrqa show 3 | head -1``) ends quietly with status 141, as a Unix tool killed by
SIGPIPE would.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import pkgutil
import re
import sys

from ehrqa import __version__
from ehrqa.errors import DataError

log = logging.getLogger("ehrqa")

# Order in --help; commands not listed come after, alphabetically.
ORDER = ["demo", "validate", "show", "score", "interpret", "identify", "generate", "align", "train"]

EXIT_ERROR = 2  # bad input, flag or file; argparse uses the same status for usage errors
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_STDOUT_CLOSED = 141  # 128 + SIGPIPE


def _command_modules() -> list:
    import ehrqa.commands as pkg

    names = [m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")]
    names.sort(key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    return [importlib.import_module(f"ehrqa.commands.{n}") for n in names]


# Commands whose result is what they print (a case, an answer, scores, a tuning table, a verdict):
# ``-q`` keeps their stdout. Every other command writes its results to files, and ``-q`` leaves
# errors only (no tables, no notices).
PRINTS_RESULT = {"show", "answer", "score", "tune", "validate"}


class Parser(argparse.ArgumentParser):
    """argparse with the one ``ehrqa: error:`` line instead of the usage block (sub-parsers inherit it)."""

    def error(self, message: str):  # type: ignore[override]
        raise DataError(f"{message} (see {self.prog} --help)")


def _add_global_flags(parser: argparse.ArgumentParser, default: object) -> None:
    """``-v``/``-q``; on sub-commands with a SUPPRESS default so that ``ehrqa -v show`` is not undone."""
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="log progress details (never note text)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", default=default, help="only errors; no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="ehrqa",
        description="Grounded question answering over clinical notes (ArchEHR-QA 2026).",
    )
    parser.add_argument("--version", action="version", version=f"ehrqa {__version__}")
    _add_global_flags(parser, default=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        name = module.__name__.rsplit(".", 1)[1]
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP))
        module.add_arguments(p)
        for command_parser in _with_nested(p):  # `ehrqa train aligner -q` as well
            _add_global_flags(command_parser, default=argparse.SUPPRESS)
        p.set_defaults(_run=module.run)
    return parser


def _with_nested(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and the parsers of its own sub-commands, recursively."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found.extend(_with_nested(child))
    return found


def _configure_output(verbose: bool, quiet: bool) -> None:
    level = logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="ehrqa: %(levelname)s: %(message)s")
    if quiet:
        os.environ["EHRQA_NO_PROGRESS"] = "1"  # ehrqa's own bars (ehrqa.progress)
        os.environ["TQDM_DISABLE"] = "1"  # any other tqdm bar, e.g. "Loading checkpoint shards"
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # read by huggingface_hub and transformers


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "_run", None):
            parser.print_help()
            return EXIT_ERROR
        _configure_output(args.verbose, args.quiet)
        with _quiet_stdout(args.quiet and args.command not in PRINTS_RESULT):
            status = int(args._run(args) or 0)
            sys.stdout.flush()  # a closed pipe shows up here, inside the handlers below
        return status
    except DataError as e:
        return _error(str(e))
    except BrokenPipeError as e:
        if _stdout_closed():
            return _quiet_exit()
        return _error(_describe_os_error(e))
    except OSError as e:  # a file ehrqa could not read or write that no command anticipated
        log.info("details of the error below", exc_info=True)  # with -v only
        return _error(_describe_os_error(e))
    except SystemExit as e:
        if isinstance(e.code, str):  # raise SystemExit("ehrqa cmd: message") from older command code
            return _error(re.sub(r"^ehrqa( [\w-]+)?: (error: )?", "", e.code))
        raise
    except KeyboardInterrupt:
        print("ehrqa: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


@contextlib.contextmanager
def _quiet_stdout(quiet: bool):
    """``-q``: what a command prints (tables, notices, "wrote ...") goes nowhere; errors still do."""
    if not quiet:
        yield
        return
    with open(os.devnull, "w", encoding="utf-8") as devnull, contextlib.redirect_stdout(devnull):
        yield


# The Python API's messages name its parameters as Python spells them (``force=True``,
# ``recipe=NAME``); on the command line the same message names the flag (``--force``, ``--recipe NAME``).
# Only these parameter names are rewritten, so that ``key=value`` text of a file is left alone.
API_PARAMETERS = ("out", "force", "recipe", "xml", "folds", "output", "resume")
_API_PARAMETER = re.compile(r"(?<![\w.=-])(" + "|".join(API_PARAMETERS) + r")=(True\b)?")


def as_flags(message: str) -> str:
    """``use out=DIR or force=True`` -> ``use --out DIR or --force``."""

    def flag(m: re.Match) -> str:
        name = "--" + m.group(1).replace("_", "-")
        if m.group(2) or m.end() == len(message) or message[m.end()].isspace():
            return name
        return name + " "

    return _API_PARAMETER.sub(flag, message)


def _error(message: str) -> int:
    line = " ".join(as_flags(message).split("\n")).strip()
    try:
        print(f"ehrqa: error: {line}", file=sys.stderr)
    except OSError:  # stderr closed as well: the exit status is all that is left
        pass
    return EXIT_ERROR


def _describe_os_error(e: OSError) -> str:
    """``PATH: reason`` from an OSError, e.g. ``out/score.json: permission denied``."""
    reason = e.strerror or str(e) or type(e).__name__
    reason = reason[:1].lower() + reason[1:]
    if e.filename is None:
        return reason
    path = os.fsdecode(e.filename)
    if e.filename2 is not None:
        return f"{path} -> {os.fsdecode(e.filename2)}: {reason}"
    return f"{path}: {reason}"


def _stdout_closed() -> bool:
    """True when the reader of our stdout has gone away (``| head -1``)."""
    try:
        import select

        poller = select.poll()
        poller.register(sys.__stdout__.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll() on this platform, or stdout is no file
        return True


def _quiet_exit() -> int:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):
        pass
    return EXIT_STDOUT_CLOSED


if __name__ == "__main__":
    sys.exit(main())
