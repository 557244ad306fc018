"""``ehrqa view``: write the static HTML case viewer of a run directory (or two, compared)."""

from __future__ import annotations

import argparse

HELP = "write one self-contained HTML page to read a run's cases (optionally beside a second run)"
DESCRIPTION = (
    "Write a static, self-contained HTML page (no external requests) for RUN_DIR: an index of cases with "
    "per-case scores (worst first, sortable) and every case with its note coloured by the ST2 prediction, "
    "the ST1 question, the ST3 answer linked to the note sentences it cites and the ST4 links. With "
    "RUN_DIR_B the two runs are shown side by side with the cases that got better or worse. Plots go to "
    "each run's plots/ folder (needs matplotlib: pip install 'ehrqa[view]'). The page contains note text (PHI)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by ehrqa run")
    parser.add_argument("run_b", metavar="RUN_DIR_B", nargs="?", help="a second run to compare with")
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="HTML file to write (default: RUN_DIR/view/index.html; with RUN_DIR_B: "
        "RUN_DIR/view-vs-<its name>/index.html)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the matplotlib plots")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ehrqa.errors import DataError
    from ehrqa.text import plural
    from ehrqa.view.html import write_view

    if args.out is not None and Path(args.out).is_dir():
        raise DataError(f"--out {args.out}: is a directory; give a file name such as {Path(args.out) / 'index.html'}")
    result = write_view(args.run_dir, args.run_b, args.out, plots=not args.no_plots)
    print(
        f"ehrqa view: wrote {result.path} ({plural(result.n_cases, 'case')}, {result.n_bytes / 1024:.0f} KiB, "
        f"{plural(len(result.plots), 'plot')}, {result.seconds:.1f} s)"
    )
    print("ehrqa view: the page contains clinical note text (PHI); keep it where the data may be kept")
    return 0
