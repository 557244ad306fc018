"""The case viewer: one static, self-contained HTML page for a run directory (or two, side by side).

``write_view(run_dir, run_b=None, out=None)`` writes ``RUN_DIR/view/index.html``, or with ``run_b``
``RUN_DIR/view-vs-<B>/index.html`` (and the plots of each run to its ``plots/*.png``). The page makes
no external request: styles, script and images are inline, and every piece of note, narrative and
answer text is HTML-escaped. It holds note text (PHI).

What a case shows, per run: the note as numbered sentences coloured by ST2 (hit, miss, false alarm;
predicted only when there is no gold), the ST1 question, the generated ST3 answer whose sentences
highlight the note sentences they cite on hover or click, and the ST4 alignment of the reference
answer with correct, wrong and missing links (vote counts where the run kept them).
"""

from __future__ import annotations

import base64
import html
import time
from dataclasses import dataclass
from pathlib import Path

from ehrqa.data.case import AnswerSentence, Case
from ehrqa.errors import DataError
from ehrqa.io import atomic_write_text
from ehrqa.runs.layout import RunLayout
from ehrqa.text import plural
from ehrqa.view.runview import HEADLINE_LABEL, RunView, SubtaskView, load_run_view

EPS = 1e-9


@dataclass
class ViewResult:
    path: Path
    n_bytes: int
    n_cases: int
    seconds: float
    plots: list[Path]


def e(value: object) -> str:
    """HTML-escaped text (quotes too, so it is safe inside attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def write_view(
    run_dir: str | Path, run_b: str | Path | None = None, out: str | Path | None = None, *, plots: bool = True
) -> ViewResult:
    """Render the viewer page for ``run_dir`` (compared with ``run_b`` when given) and write it to
    ``out``, by default :func:`page_path`. Nothing is written when the runs cannot be shown."""
    start = time.perf_counter()
    path = Path(out) if out is not None else page_path(run_dir, run_b)
    if path.is_dir():
        raise DataError(f"{path}: is a directory; give a file name such as {path / 'index.html'}")
    a = load_run_view(run_dir)
    b = load_run_view(run_b) if run_b is not None else None
    if b is not None and not {c.id for c in a.cases} & {c.id for c in b.cases}:
        raise DataError(
            f"{a.path} and {b.path} have no case in common (cases {_id_range(a)} vs {_id_range(b)}); nothing to compare"
        )
    images: list[tuple[str, Path]] = []
    if plots:
        images = make_plots(a, "A" if b is not None else "") + (make_plots(b, "B") if b is not None else [])
    atomic_write_text(path, render(a, b, images))
    return ViewResult(path, path.stat().st_size, len(a.cases), time.perf_counter() - start, [p for _, p in images])


def page_path(run_dir: str | Path, run_b: str | Path | None = None) -> Path:
    """Where the page goes by default: ``RUN_DIR/view/index.html``, or for a comparison
    ``RUN_DIR/view-vs-<name of RUN_DIR_B>/index.html`` (the run's own page stays as it is)."""
    layout = RunLayout(run_dir)
    return layout.page if run_b is None else layout.comparison_page(run_b)


def _id_range(run: RunView) -> str:
    ids = [c.id for c in run.cases]
    return ids[0] if len(ids) == 1 else f"{ids[0]}..{ids[-1]}" if ids else "none"


# ---------------------------------------------------------------- plots


def make_plots(run: RunView, run_label: str = "") -> list[tuple[str, Path]]:
    """The run's plots as (title, PNG path) in ``RUN_DIR/plots``; none when matplotlib is missing.
    ``run_label`` ("A", "B") starts each title on a page comparing two runs."""
    import logging

    from ehrqa.view.runview import vote_threshold_points

    try:
        from ehrqa.view import plots
    except ImportError:
        return []
    out_dir = RunLayout(run.path).plots
    made: list[tuple[str, Path]] = []
    try:
        for n, view in run.subtasks.items():
            if plots.bar_count(n, view.scores) >= 2:  # one bar (ST1 with ROUGE alone): the histogram says it
                ids = list(view.predictions)
                official = plots.is_official_test(n, ids, run.data_name)
                made.append(
                    (
                        f"ST{n} metrics",
                        plots.metric_bars(n, view.scores, out_dir / f"st{n}_metrics.png", official_test=official),
                    )
                )
            curve = vote_threshold_points(view, run.cases)
            if curve is not None:
                made.append(
                    (f"ST{n} vote threshold", plots.threshold_curve(n, *curve, out_dir / f"st{n}_threshold.png"))
                )
            values = [v for v in (view.headline(c.id) for c in run.cases) if v is not None]
            if values:
                label = HEADLINE_LABEL[n]
                made.append(
                    (f"{label} per case", plots.score_histogram(label, values, out_dir / f"st{n}_per_case.png"))
                )
    except ImportError as err:  # matplotlib not installed: the page says so
        logging.getLogger(__name__).warning("%s", err)
    return [(f"{run_label} {title}" if run_label else title, path) for title, path in made]


# ---------------------------------------------------------------- page


def render(a: RunView, b: RunView | None = None, images: list[tuple[str, Path]] | None = None) -> str:
    """The whole page as a string."""
    runs = [a] + ([b] if b is not None else [])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>ehrqa view: {e(a.name)}{' vs ' + e(b.name) if b else ''}</title>",
        f"<style>{CSS}</style></head><body>",
        _header(runs),
        _index(a, b),
        _plots(images or []),
        '<main id="cases">',
    ]
    parts.extend(_case(case, runs) for case in a.cases)
    parts += ["</main>", f"<script>{JS}</script>", "</body></html>"]
    return "\n".join(parts)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _headline_scores(view: SubtaskView) -> str:
    s = view.scores
    keys = {
        1: ("rougeLsum",),
        2: ("strict_micro_f1",),
        3: ("overall_score", "overall_partial"),
        4: ("micro_f1",),
    }[view.subtask]
    for k in keys:
        if isinstance(s.get(k), (int, float)):
            return f"{k} {s[k]:.2f}"
    return "not scored"


def _header(runs: list[RunView]) -> str:
    rows = []
    for label, run in zip("AB", runs, strict=False):
        cells = []
        for n in (1, 2, 3, 4):
            view = run.subtasks.get(n)
            if view is None:
                cells.append("<td>–</td>")
                continue
            source = f' <span class="muted">{e(view.scores_source)}</span>' if view.scores_source else ""
            cells.append(f"<td>{e(_headline_scores(view))}{source}</td>")
        recipe = run.meta.get("recipe") or {}
        name = recipe.get("name") if isinstance(recipe, dict) else None
        rows.append(
            f'<tr><th class="run-{label}">{label}</th><td>{e(run.name)}</td><td>{e(name or "")}</td>'
            f"<td>{e(run.data_name)} ({plural(len(run.cases), 'case')}{', gold' if run.has_gold else ', no gold'})</td>"
            + "".join(cells)
            + "</tr>"
        )
    warn = ""
    if len(runs) == 2 and _dataset_identity(runs[0].meta) != _dataset_identity(runs[1].meta):
        warn = '<p class="warn">The two runs read different dataset files; cases are matched by id.</p>'
    return (
        "<header><h1>ehrqa case viewer</h1>"
        '<p class="phi">This page contains clinical note text (PHI). Keep it where the data itself may be kept.</p>'
        '<table class="runs"><thead><tr><th></th><th>run</th><th>recipe</th><th>data</th>'
        "<th>ST1</th><th>ST2</th><th>ST3</th><th>ST4</th></tr></thead><tbody>"
        + "".join(rows)
        + f"</tbody></table>{warn}{LEGEND}</header>"
    )


def _dataset_identity(meta: dict):
    """What a run's ``run.json`` says its dataset was: the XML's sha256, else its path."""
    data = meta.get("data") or {}
    return data.get("xml_sha256") or (meta.get("data_files") or {}).get("xml") or data.get("xml")


LEGEND = (
    '<details class="legend" open><summary>How to read a case</summary><p>'
    '<span class="sent st2-hit">hit</span> essential and predicted · '
    '<span class="sent st2-miss">miss</span> essential, not predicted · '
    '<span class="sent st2-false">false alarm</span> predicted, not essential · '
    '<span class="sent st2-pred">predicted</span> (no gold) · '
    '<span class="tag">E</span>/<span class="tag sup">s</span> gold essential/supplementary. '
    "Hover or click an answer sentence to highlight the note sentences it cites: "
    '<span class="sent cited">cited</span>; ST4 links: '
    '<span class="link correct">correct</span> <span class="link wrong">wrong</span> '
    '<span class="link missing">missing</span>; <span class="votes">3/5</span> = votes.</p></details>'
)


def _plots(images: list[tuple[str, Path]]) -> str:
    if not images:
        return ""
    figures = []
    for title, path in images:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        figures.append(
            f'<figure><img alt="{e(title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{e(title)}</figcaption></figure>"
        )
    return (
        '<section id="plots"><details open><summary><h2>Plots</h2></summary><div class="plots">'
        + "".join(figures)
        + "</div></details></section>"
    )


def _index(a: RunView, b: RunView | None) -> str:
    subtasks = sorted(set(a.subtasks) | (set(b.subtasks) if b else set()))
    head = ["<th data-type='text'>case</th>", "<th data-type='text'>specialty</th>"]
    for n in subtasks:
        head.append(f"<th>{e(HEADLINE_LABEL[n])}{' A' if b else ''}</th>")
        if b:
            head.append(f"<th>{e(HEADLINE_LABEL[n])} B</th>")
    head.append("<th class='sorted-asc' title='mean of the per-case scores of the subtasks'>mean A</th>")
    if b:
        head += ["<th>mean B</th>", "<th title='B minus A'>Δ</th>", "<th data-type='text'>B vs A</th>"]
    rows, verdicts = [], {"better": 0, "worse": 0, "same": 0}
    for case in _worst_first(a):
        cells = [
            f'<td data-v="{e(case.id)}"><a href="#case-{e(case.id)}">{e(case.id)}</a></td>',
            f"<td>{e(case.specialty or '')}</td>",
        ]
        for n in subtasks:
            for run in [a] + ([b] if b else []):
                view = run.subtasks.get(n)
                cells.append(_num_cell(view.headline(case.id) if view else None))
        mean_a = a.case_score(case.id)
        cells.append(_num_cell(mean_a))
        verdict = ""
        if b:
            mean_b = b.case_score(case.id)
            delta = None if mean_a is None or mean_b is None else mean_b - mean_a
            verdict = "–" if delta is None else "better" if delta > EPS else "worse" if delta < -EPS else "same"
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
            cells += [_num_cell(mean_b), _num_cell(delta, signed=True), f'<td class="verdict {verdict}">{verdict}</td>']
        rows.append(f'<tr data-case="{e(case.id)}">' + "".join(cells) + "</tr>")
    summary = ""
    if b:
        summary = (
            f'<p class="compare">B ({e(b.name)}) vs A ({e(a.name)}): better on {verdicts["better"]}, '
            f"worse on {verdicts['worse']}, same on {verdicts['same']} cases.</p>"
        )
    return (
        '<section id="index"><h2>Cases <span class="muted">(worst first; click a column to sort)</span></h2>'
        f'{summary}<table class="index sortable"><thead><tr>{"".join(head)}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _worst_first(run: RunView) -> list[Case]:
    def key(case: Case):
        value = run.case_score(case.id)
        return (value is None, value if value is not None else 0.0)

    return sorted(run.cases, key=key)


def _num_cell(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return '<td class="num" data-v="">–</td>'
    text = f"{value:+.1f}" if signed else f"{value:.1f}"
    return f'<td class="num" data-v="{value:.6f}">{text}</td>'


# ---------------------------------------------------------------- one case


def _case(case: Case, runs: list[RunView]) -> str:
    badges = []
    for label, run in zip("AB", runs, strict=False):
        badges.append(f'<span class="badge run-{label}">{label} {_fmt(run.case_score(case.id))}</span>')
    out = [
        f'<section class="case" id="case-{e(case.id)}" data-case="{e(case.id)}">',
        f"<h2>Case {e(case.id)}{' · ' + e(case.specialty) if case.specialty else ''} {''.join(badges)}"
        ' <a class="top" href="#index">index</a></h2>',
        f'<div class="narrative"><h3>Patient narrative</h3><p>{_narrative(case)}</p></div>',
        _questions(case, runs),
        f'<div class="panels{" two" if len(runs) == 2 else ""}">',
    ]
    for label, run in zip("AB", runs, strict=False):
        out.append(_panel(case, run, label, two=len(runs) == 2))
    out += ["</div>", "</section>"]
    return "\n".join(out)


def _narrative(case: Case) -> str:
    """The narrative with the patient-question phrases marked (offsets checked, else found)."""
    text = case.narrative
    spans = []
    for p in case.question_phrases:
        start = (
            p.start if p.start is not None and text[p.start : p.start + len(p.text)] == p.text else text.find(p.text)
        )
        if p.text and start >= 0:
            spans.append((start, start + len(p.text)))
    out, pos = [], 0
    for start, end in sorted(spans):
        if start < pos:
            continue
        out += [e(text[pos:start]), f'<mark class="qphrase">{e(text[start:end])}</mark>']
        pos = end
    out.append(e(text[pos:]))
    return "".join(out)


def _questions(case: Case, runs: list[RunView]) -> str:
    rows = []
    if case.clinician_question:
        label = "question (input)" if case.question_is_input else "clinician (gold)"
        rows.append(f"<tr><th>{label}</th><td>{e(case.clinician_question)}</td><td></td></tr>")
    for label, run in zip("AB", runs, strict=False):
        view = run.subtasks.get(1)
        if view is None or case.id not in view.predictions:
            continue
        score = view.headline(case.id)
        cell = f"ROUGE-Lsum {_fmt(score)}" if score is not None else ""
        rows.append(
            f'<tr><th class="run-{label}">ST1 {label}</th><td>{e(view.predictions[case.id])}</td>'
            f'<td class="muted">{cell}</td></tr>'
        )
    if not rows:
        return ""
    return '<div class="questions"><h3>Questions</h3><table>' + "".join(rows) + "</table></div>"


def _panel(case: Case, run: RunView, label: str, *, two: bool) -> str:
    st2 = run.subtasks.get(2)
    pred = {str(s) for s in (st2.predictions.get(case.id) or ())} if st2 else set()
    st2_record = st2.records.get(case.id, {}) if st2 else {}
    votes = st2_record.get("votes") if isinstance(st2_record.get("votes"), dict) else {}
    n_votes = st2_record.get("n_votes")
    labels = dict(case.relevance or ())
    note = ['<ol class="note">']
    paragraph = None
    for s in case.sentences:
        if paragraph is not None and s.paragraph_id != paragraph:
            note.append('<li class="gap" aria-hidden="true"></li>')
        paragraph = s.paragraph_id
        classes = ["sent"]
        gold = labels.get(s.id)
        if st2:
            if case.relevance is None:
                classes.append("st2-pred" if s.id in pred else "")
            elif gold == "essential":
                classes.append("st2-hit" if s.id in pred else "st2-miss")
            elif s.id in pred:
                classes.append("st2-false" + (" lenient" if gold == "supplementary" else ""))
        tag = {"essential": '<span class="tag">E</span>', "supplementary": '<span class="tag sup">s</span>'}.get(
            gold, ""
        )
        vote = ""
        if s.id in votes:
            vote = f'<span class="votes">{e(votes[s.id])}{"/" + e(n_votes) if n_votes else ""}</span>'
        note.append(
            f'<li class="{" ".join(c for c in classes if c)}" data-sid="{e(s.id)}">'
            f'<span class="sid">{e(s.id)}</span>{tag}<span class="text">{e(s.text)}</span>{vote}</li>'
        )
    note.append("</ol>")
    st2_line = ""
    if st2 and case.id in st2.per_case:
        v = st2.per_case[case.id]
        st2_line = (
            f'<p class="muted">ST2 strict P {_fmt(v.get("strict_precision"))}'
            f" · R {_fmt(v.get('strict_recall'))}"
            f" · F1 {_fmt(v.get('strict_f1'))}</p>"
        )
    answers = [_st3(case, run), _reference(case), _st4(case, run)]
    return (
        f'<div class="panel run-{label}{" stacked" if two else ""}" data-run="{label}">'
        f'<div class="note-col"><h3>Note <span class="badge run-{label}">{label}: {e(run.name)}</span></h3>{st2_line}'
        + "".join(note)
        + '</div><div class="answer-col">'
        + "".join(answers)
        + "</div></div>"
    )


def _cites_attr(ids) -> str:
    return e(" ".join(str(i) for i in ids))


def _st3(case: Case, run: RunView) -> str:
    view = run.subtasks.get(3)
    if view is None or case.id not in view.predictions and case.id not in view.records:
        return ""
    record = view.records.get(case.id, {})
    status = record.get("status")
    badge = f' <span class="status {e(status)}">{e(status)}</span>' if status and status != "ok" else ""
    metrics = view.per_case.get(case.id, {})
    shown = " · ".join(f"{k} {metrics[k]:.1f}" for k in ("bleu", "rougeLsum", "sari") if k in metrics)
    body: list[str] = []
    sentences = record.get("answer_sentences")
    if isinstance(sentences, list) and sentences:
        body.append('<ol class="answer">')
        for a in sentences:
            if not isinstance(a, dict):
                continue
            cites = [str(c) for c in a.get("citations") or ()]
            unsupported = ' <span class="status fallback">unsupported</span>' if a.get("supported") is False else ""
            marks = f' <span class="cites">|{e(",".join(cites))}|</span>' if cites else ""
            body.append(
                f'<li class="ans st3" tabindex="0" data-cites="{_cites_attr(cites)}"'
                f' data-aid="{e(a.get("id"))}">'
                f"{e(a.get('text'))}{marks}{unsupported}</li>"
            )
        body.append("</ol>")
    else:
        text = view.predictions.get(case.id)
        body.append(f'<p class="answer-text">{e(text)}</p><p class="muted">(no citations recorded for this answer)</p>')
    words = len(str(view.predictions.get(case.id) or "").split())
    return (
        f'<div class="st3"><h3>Generated answer (ST3){badge} <span class="muted">{words} words'
        f"{' · ' + e(shown) if shown else ''}</span></h3>" + "".join(body) + "</div>"
    )


def _reference(case: Case) -> str:
    if case.answer_sentences and all(a.citations is not None for a in case.answer_sentences):
        items = "".join(
            f'<li class="ans ref" tabindex="0" data-cites="{_cites_attr(a.citations)}" data-aid="{e(a.id)}">'
            f'{e(a.text)} <span class="cites">|{e(",".join(a.citations or ()))}|</span></li>'
            for a in case.answer_sentences
        )
        return f'<div class="reference"><h3>Reference answer (gold citations)</h3><ol class="answer">{items}</ol></div>'
    if case.answer:
        return f'<div class="reference"><h3>Reference answer</h3><p class="answer-text">{e(case.answer)}</p></div>'
    return ""


def _st4(case: Case, run: RunView) -> str:
    view = run.subtasks.get(4)
    if view is None:
        return ""
    predicted: dict[str, list[str]] = {}
    for link in view.predictions.get(case.id) or ():
        if isinstance(link, dict):
            ids = predicted.setdefault(str(link.get("answer_id")), [])
            ids.extend(str(n) for n in link.get("evidence_id") or () if str(n) not in ids)
    answer_sentences = case.answer_sentences
    if not answer_sentences:  # no key: the answer texts are unknown, show the links by answer id
        answer_sentences = tuple(AnswerSentence(aid, f"answer sentence {aid}") for aid in predicted)
    if not answer_sentences:
        return ""
    record = view.records.get(case.id, {})
    votes = record.get("votes") if isinstance(record.get("votes"), dict) else {}
    n_votes = record.get("n_votes")
    has_gold = all(a.citations is not None for a in answer_sentences)
    items = []
    for a in answer_sentences:
        pred = predicted.get(a.id, [])
        gold = list(a.citations or ()) if has_gold else None
        a_votes = votes.get(a.id) if isinstance(votes.get(a.id), dict) else {}
        chips = []
        for nid in pred:
            kind = "pred" if gold is None else "correct" if nid in gold else "wrong"
            chips.append(_chip(nid, kind, a_votes.get(nid), n_votes))
        for nid in gold or ():
            if nid not in pred:
                chips.append(_chip(nid, "missing", a_votes.get(nid), n_votes))
        if not chips:
            chips.append('<span class="muted">no links</span>')
        gold_attr = f' data-gold="{_cites_attr(gold)}"' if gold is not None else ""
        items.append(
            f'<li class="ans st4" tabindex="0" data-cites="{_cites_attr(pred)}"{gold_attr} data-aid="{e(a.id)}">'
            f'<span class="text">{e(a.text)}</span><span class="links">{"".join(chips)}</span></li>'
        )
    score = view.per_case.get(case.id, {})
    line = (
        f' <span class="muted">P {_fmt(score.get("precision"))} · R {_fmt(score.get("recall"))}'
        f" · F1 {_fmt(score.get('f1'))}</span>"
        if score
        else ""
    )  # noqa: E501
    return (
        f'<div class="st4"><h3>Evidence alignment (ST4){line}</h3><ol class="answer">' + "".join(items) + "</ol></div>"
    )


def _chip(nid: str, kind: str, count: object, n_votes: object) -> str:
    symbol = {"correct": "✓", "wrong": "✗", "missing": "missing", "pred": ""}[kind]
    vote = f' <span class="votes">{e(count)}{"/" + e(n_votes) if n_votes else ""}</span>' if count is not None else ""
    return f'<span class="link {kind}" data-nid="{e(nid)}">{e(nid)} {symbol}{vote}</span>'


CSS = """
:root { --hit:#c6f6d5; --miss:#feebc8; --false:#fed7d7; --pred:#bee3f8; --ink:#1a202c; --muted:#718096; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       margin: 0 1.2rem 3rem; }
h1 { font-size: 1.4rem; margin: .8rem 0 .2rem; } h2 { font-size: 1.15rem; }
h3 { font-size: .95rem; margin: .6rem 0 .3rem; }
.phi { background: #fffbea; border: 1px solid #f6e05e; padding: .3rem .6rem; display: inline-block; }
.muted { color: var(--muted); font-weight: normal; font-size: .85em; }
.warn { color: #c53030; }
table { border-collapse: collapse; } td, th { padding: .2rem .5rem; text-align: left; vertical-align: top; }
table.runs td, table.runs th { border-bottom: 1px solid #e2e8f0; }
table.index { margin-top: .3rem; } table.index th { cursor: pointer; background: #edf2f7; position: sticky; top: 0; }
table.index th.sorted-asc::after { content: " ▲"; } table.index th.sorted-desc::after { content: " ▼"; }
table.index tr:nth-child(even) { background: #f7fafc; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict.better { color: #276749; font-weight: 600; } .verdict.worse { color: #c53030; font-weight: 600; }
.plots { display: flex; flex-wrap: wrap; gap: .8rem; } figure { margin: 0; }
figure img { height: 250px; width: auto; max-width: 100%; } #plots summary h2 { display: inline; }
figcaption { font-size: .8rem; color: var(--muted); }
.case { border-top: 3px solid #cbd5e0; margin-top: 1.5rem; padding-top: .3rem; }
.badge { font-size: .75rem; padding: .05rem .4rem; border-radius: .6rem; background: #e2e8f0; font-weight: normal; }
.badge.run-B, th.run-B { background: #faf089; } .badge.run-A, th.run-A { background: #c3dafe; }
.top { font-size: .75rem; font-weight: normal; }
mark.qphrase { background: #fefcbf; border-bottom: 2px solid #d69e2e; }
.panels { display: grid; grid-template-columns: 1fr; gap: 1rem; } .panels.two { grid-template-columns: 1fr 1fr; }
.panel { display: grid; grid-template-columns: 3fr 2fr; gap: 1rem; } .panel.stacked { grid-template-columns: 1fr; }
.panel:not(.stacked) .answer-col { position: sticky; top: .3rem; align-self: start; max-height: 98vh;
                                   overflow-y: auto; }
.panel.stacked .note-col { position: sticky; top: 0; z-index: 1; background: #fff; max-height: 48vh; overflow-y: auto;
                           border-bottom: 2px solid #cbd5e0; padding-bottom: .3rem; }
ol.note { list-style: none; padding: 0; margin: 0; } ol.note li.gap { height: .6rem; }
.sent { padding: .1rem .3rem; border-radius: 3px; margin: 1px 0; border: 2px solid transparent; }
ol.note .sent { display: flex; gap: .4rem; align-items: baseline; }
.sid { color: var(--muted); min-width: 1.8rem; text-align: right; font-variant-numeric: tabular-nums; }
.sent .text { white-space: pre-wrap; flex: 1; }
.st2-hit { background: var(--hit); } .st2-miss { background: var(--miss); border-left: 4px dashed #dd6b20; }
.st2-false { background: var(--false); } .st2-false.lenient { background: #fff5f5; }
.st2-pred { background: var(--pred); }
.tag { font-size: .7rem; font-weight: 700; color: #2f855a; border: 1px solid #9ae6b4; border-radius: 3px;
       padding: 0 .2rem; }
.tag.sup { color: #718096; border-color: #cbd5e0; }
.sent.cited { border: 2px solid #2b6cb0; box-shadow: 0 0 0 2px #90cdf4; }
.sent.link-correct { border-color: #2f855a; box-shadow: 0 0 0 2px #9ae6b4; }
.sent.link-wrong { border-color: #c53030; box-shadow: 0 0 0 2px #feb2b2; }
.sent.missing { border: 2px dashed #4a5568; box-shadow: none; }
ol.note .sent.missing::after { content: "missing"; font-size: .7rem; color: #fff; background: #4a5568;
                               padding: 0 .3rem; border-radius: 3px; }
ol.answer { padding-left: 1.4rem; margin: .2rem 0; }
.ans { cursor: pointer; padding: .15rem .3rem; border-radius: 3px; margin-bottom: .15rem; }
.ans:hover, .ans:focus { background: #ebf8ff; outline: none; } .ans.active { background: #bee3f8; }
.cites { color: #2b6cb0; font-size: .8rem; }
.links { display: inline-flex; flex-wrap: wrap; gap: .25rem; margin-left: .4rem; }
.link { font-size: .75rem; padding: 0 .3rem; border-radius: 3px; border: 1px solid; }
.link.correct { color: #22543d; background: #c6f6d5; border-color: #68d391; }
.link.wrong { color: #742a2a; background: #fed7d7; border-color: #fc8181; }
.link.missing { color: #4a5568; background: #fff; border: 1px dashed #4a5568; }
.link.pred { color: #2a4365; background: #bee3f8; border-color: #90cdf4; }
.votes { font-size: .7rem; color: #553c9a; background: #e9d8fd; border-radius: 3px; padding: 0 .25rem; }
.status { font-size: .7rem; background: #fed7d7; color: #742a2a; border-radius: 3px; padding: 0 .3rem; }
.legend { margin: .5rem 0; font-size: .85rem; } .legend .sent, .legend .link { display: inline-block; }
"""

JS = """
(function () {
  function ids(value) { return value ? value.split(' ').filter(Boolean) : []; }
  function clear(panel) {
    panel.querySelectorAll('.sent').forEach(function (s) {
      s.classList.remove('cited', 'link-correct', 'link-wrong', 'missing');
    });
    panel.querySelectorAll('.ans.active').forEach(function (a) { a.classList.remove('active'); });
  }
  function show(panel, ans) {
    clear(panel);
    if (!ans) return;
    ans.classList.add('active');
    var cites = ids(ans.dataset.cites);
    var gold = ans.dataset.gold === undefined ? null : ids(ans.dataset.gold);
    panel.querySelectorAll('ol.note .sent').forEach(function (s) {
      var id = s.dataset.sid;
      if (cites.indexOf(id) >= 0) {
        s.classList.add('cited');
        if (gold) s.classList.add(gold.indexOf(id) >= 0 ? 'link-correct' : 'link-wrong');
      } else if (gold && gold.indexOf(id) >= 0) {
        s.classList.add('missing');
      }
    });
    // a note that scrolls on its own (two runs side by side): bring the first highlighted sentence into it
    var col = panel.querySelector('.note-col');
    var first = panel.querySelector('ol.note .sent.cited, ol.note .sent.missing');
    if (col && first && col.scrollHeight > col.clientHeight + 1) {
      var offset = first.getBoundingClientRect().top - col.getBoundingClientRect().top;
      if (offset < 40 || offset > col.clientHeight - 40) col.scrollTop += offset - 60;
    }
  }
  var pinned = new Map();
  document.querySelectorAll('.panel').forEach(function (panel) {
    panel.addEventListener('click', function (ev) {
      var ans = ev.target.closest('.ans');
      if (!ans) return;
      var next = pinned.get(panel) === ans ? null : ans;
      pinned.set(panel, next);
      show(panel, next);
    });
    panel.addEventListener('mouseover', function (ev) {
      var ans = ev.target.closest('.ans');
      if (ans) show(panel, ans);
    });
    panel.addEventListener('mouseout', function (ev) {
      var ans = ev.target.closest('.ans');
      if (ans && !ans.contains(ev.relatedTarget)) show(panel, pinned.get(panel) || null);
    });
    panel.addEventListener('keydown', function (ev) {
      if (ev.key === 'Enter' && ev.target.classList.contains('ans')) ev.target.click();
    });
  });
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var heads = table.querySelectorAll('th');
    heads.forEach(function (th, col) {
      th.addEventListener('click', function () {
        var asc = !th.classList.contains('sorted-asc');
        heads.forEach(function (h) { h.classList.remove('sorted-asc', 'sorted-desc'); });
        th.classList.add(asc ? 'sorted-asc' : 'sorted-desc');
        var text = th.dataset.type === 'text';
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r1, r2) {
          var c1 = r1.cells[col], c2 = r2.cells[col];
          var a = c1.dataset.v !== undefined ? c1.dataset.v : c1.textContent;
          var b = c2.dataset.v !== undefined ? c2.dataset.v : c2.textContent;
          if (text) {
            var na = Number(a), nb = Number(b);
            var cmp = (!isNaN(na) && !isNaN(nb)) ? na - nb : a.localeCompare(b);
            return asc ? cmp : -cmp;
          }
          if (a === '' && b === '') return 0;
          if (a === '') return 1;
          if (b === '') return -1;
          return asc ? Number(a) - Number(b) : Number(b) - Number(a);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
"""
