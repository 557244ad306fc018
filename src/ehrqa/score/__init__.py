"""Scoring submissions exactly as the official ArchEHR-QA 2026 scorers do, offline.

``score_submission(subtask, entries, cases)`` returns the official keys on the 0-100 scale
plus a signature (and CIs with ``bootstrap=N``); :func:`score` returns a :class:`ScoreResult`
that also holds the per-case values; :func:`score_predictions` scores ``{case_id: prediction}``
in process. ST2 and ST4 need only the key; ST1 and ST3 also need the XML (the narrative is
SARI's source, the clinician question is ST1's reference).

Model-based metrics use the user's official resources when given (``bertscore_model``,
``alignscore_ckpt`` + ``alignscore_model``, ``quickumls_index``); otherwise labelled stand-ins
(``bertscore_proxy``, ``medcon_proxy``) are reported, never under the official names, and
the overall score becomes ``overall_partial`` with the list of metrics it averages.
"""

from ehrqa.score.api import METRICS, parse_metrics, score, score_predictions, score_submission
from ehrqa.score.metric import MetricUnavailable, Resources
from ehrqa.score.report import LEADERBOARD, ScoreResult

__all__ = [
    "LEADERBOARD",
    "METRICS",
    "MetricUnavailable",
    "Resources",
    "ScoreResult",
    "parse_metrics",
    "score",
    "score_predictions",
    "score_submission",
]
