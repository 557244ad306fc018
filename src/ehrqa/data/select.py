"""Case ids on the command line: the official range syntax, and choosing cases by id.

``1-3 5 7-9`` (commas work too) means cases 1, 2, 3, 5, 7, 8, 9. The selection keeps the
dataset's order, whatever order the ids were given in; an id the dataset lacks, a range that
runs backwards, or an empty selection is a one-line :class:`DataError` naming the flag.
"""

from __future__ import annotations

from collections.abc import Sequence

from ehrqa.data.case import Case
from ehrqa.errors import DataError


def parse_case_ids(specs: str | Sequence[str] | None, flag: str = "--cases") -> list[str] | None:
    """``["1-3", "5"]`` or ``"1-3,5"`` -> ``["1", "2", "3", "5"]``; None -> None (all cases)."""
    if specs is None:
        return None
    if isinstance(specs, str):
        specs = [specs]
    ids: list[str] = []
    for spec in specs:
        for part in str(spec).replace(",", " ").split():
            lo, dash, hi = part.partition("-")
            if dash and lo.isdigit() and hi.isdigit():
                if int(hi) < int(lo):
                    raise DataError(f"{flag}: range {part} runs backwards (did you mean {hi}-{lo}?)")
                ids.extend(str(i) for i in range(int(lo), int(hi) + 1))
            else:
                ids.append(part)
    if not ids:
        raise DataError(f"{flag}: no case ids given")
    return list(dict.fromkeys(ids))


def select_cases(
    cases: Sequence[Case], ids: Sequence[str] | None, flag: str = "--cases", source: str = "the dataset"
) -> list[Case]:
    """The cases with these ids, in dataset order; unknown ids are an error naming ``flag`` and ``source``."""
    if ids is None:
        return list(cases)
    ids = [str(i) for i in ids]
    known = {c.id for c in cases}
    unknown = [i for i in ids if i not in known]
    if unknown:
        shown = ", ".join(unknown[:8]) + (" ..." if len(unknown) > 8 else "")
        raise DataError(f"{flag}: not in {source}: {shown}")
    keep = set(ids)
    return [c for c in cases if c.id in keep]
