"""Plots of a run as PNG files: metric bars against published numbers, threshold curves, histograms.

matplotlib is an optional extra (``pip install ehrqa[view]``) imported only inside the functions,
with the non-interactive Agg backend. Every function writes one PNG and returns its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ehrqa.text import plural

NOT_COMPARABLE = "official test set, not comparable to this dataset"


@dataclass(frozen=True)
class Reference:
    label: str  # who, e.g. "QU-NLP (paper)"
    values: Mapping[str, float]  # score key -> 0-100


# Published numbers on the official 2026 test sets (ST3: cases 121-167, ST4: 21-167).
REFERENCES: dict[int, tuple[Reference, ...]] = {
    3: (
        Reference(
            "QU-NLP (paper)",
            {
                "overall": 32.87,
                "bleu": 9.42,
                "rougeLsum": 27.04,
                "sari": 55.42,
                "bertscore": 43.00,
                "alignscore": 25.28,
                "medcon": 37.04,
            },
        ),
        Reference("leaderboard best", {"overall": 36.33}),
    ),
    4: (
        Reference("QU-NLP (paper)", {"micro_f1": 67.16}),
        Reference("leaderboard best (about)", {"micro_f1": 81.5}),
    ),
}
# The bars drawn per subtask: (score key in ehrqa.score output, axis label). Stand-ins map to the official key.
BAR_METRICS: dict[int, tuple[tuple[str, str], ...]] = {
    1: (("rougeLsum", "ROUGE-Lsum"), ("bertscore", "BERTScore"), ("alignscore", "AlignScore"), ("medcon", "MEDCON")),
    2: (("strict_micro_f1", "strict micro F1"), ("strict_micro_precision", "P"), ("strict_micro_recall", "R")),
    3: (
        ("overall", "overall"),
        ("bleu", "BLEU"),
        ("rougeLsum", "ROUGE-Lsum"),
        ("sari", "SARI"),
        ("bertscore", "BERTScore"),
        ("alignscore", "AlignScore"),
        ("medcon", "MEDCON"),
    ),
    4: (("micro_f1", "micro F1"), ("micro_precision", "P"), ("micro_recall", "R")),
}
OFFICIAL_TEST_IDS = {3: {str(i) for i in range(121, 168)}, 4: {str(i) for i in range(21, 168)}}


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'ehrqa[view]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def is_official_test(subtask: int, case_ids: Sequence[str], data_name: str) -> bool:
    """True only for the full official evaluation split of the subtask (never the bundled sample)."""
    wanted = OFFICIAL_TEST_IDS.get(subtask)
    return bool(wanted) and data_name != "sample" and set(case_ids) == wanted


def run_value(scores: Mapping[str, object], key: str) -> tuple[float | None, str]:
    """The run's value for ``key``: the official key, else its stand-in (label says which)."""
    if key == "overall":
        for k in ("overall_score", "overall_partial"):
            if isinstance(scores.get(k), (int, float)):
                return float(scores[k]), "" if k == "overall_score" else " (partial)"
        return None, ""
    if isinstance(scores.get(key), (int, float)):
        return float(scores[key]), ""
    if isinstance(scores.get(f"{key}_proxy"), (int, float)):
        return float(scores[f"{key}_proxy"]), " (stand-in)"
    return None, ""


def bar_count(subtask: int, scores: Mapping[str, object]) -> int:
    """How many of the subtask's bar metrics the run has a value for."""
    return sum(run_value(scores, key)[0] is not None for key, _ in BAR_METRICS.get(subtask, ()))


def metric_bars(subtask: int, scores: Mapping[str, object], out: str | Path, *, official_test: bool = False) -> Path:
    """Bars of the run's metrics beside the published reference numbers of the subtask."""
    plt = _pyplot()
    refs = REFERENCES.get(subtask, ())
    rows = []
    for key, label in BAR_METRICS[subtask]:
        value, note = run_value(scores, key)
        ref_values = [r.values.get(key) for r in refs]
        if value is None and all(v is None for v in ref_values):
            continue
        rows.append((label + note, value, ref_values))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(rows) + 2), 3.4), dpi=100)
    width = 0.8 / (1 + len(refs))
    xs = range(len(rows))
    series = [("this run", [r[1] for r in rows])]
    series += [(ref.label, [r[2][i] for r in rows]) for i, ref in enumerate(refs)]
    colours = ["#2b6cb0", "#a0aec0", "#718096"]
    for i, (label, values) in enumerate(series):
        pos = [x + (i - len(refs) / 2) * width for x in xs]
        heights = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(pos, heights, width, label=label, color=colours[i % len(colours)])
        for bar, v in zip(bars, values, strict=True):
            if v is not None:
                ax.annotate(f"{v:.1f}", (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(xs), [r[0] for r in rows], fontsize=8)
    ax.set_ylabel("score (0-100)")
    title = f"ST{subtask} metrics"
    if refs and not official_test:
        title += f"\nreferences: {NOT_COMPARABLE}"
    ax.set_title(title, fontsize=9)
    ax.set_ylim(0, max([100.0] + [v for _, vs in series for v in vs if v is not None]) * 1.08)
    ax.legend(fontsize=7, loc="upper right")
    return _save(fig, plt, out)


def threshold_curve(
    subtask: int, points: Sequence[tuple[int, float, float]], chosen: tuple[float, float], out: str | Path
) -> Path:
    """Precision-recall over the vote threshold: ``points`` are (threshold, precision, recall) on 0-100."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.4), dpi=100)
    rs = [p[2] for p in points]
    ps = [p[1] for p in points]
    ax.plot(rs, ps, marker="o", color="#2b6cb0", label="vote threshold")
    for t, p, r in points:
        ax.annotate(f">={t}", (r, p), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.scatter([chosen[1]], [chosen[0]], s=90, facecolors="none", edgecolors="#c53030", linewidths=2, label="chosen")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 105)
    ax.set_ylim(0, 105)
    ax.set_title(f"ST{subtask} precision-recall over the vote threshold (micro)", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    return _save(fig, plt, out)


def score_histogram(label: str, values: Sequence[float], out: str | Path) -> Path:
    """How the per-case scores spread (0-100, bins of 10)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.0), dpi=100)
    ax.hist(list(values), bins=list(range(0, 101, 10)), color="#2b6cb0", edgecolor="white")
    ax.set_xlabel(f"{label} per case")
    ax.set_ylabel("cases")
    ax.set_title(f"{label}: {plural(len(values), 'case')}", fontsize=9)
    return _save(fig, plt, out)


def _save(fig, plt, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out
