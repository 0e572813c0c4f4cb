"""The scored body of every event of a batch, encoded straight from the batch's arrays.

The body is the event-independent part of a scored event (what the prediction cache stores):
scores, decision, confidence, prediction set, uncertainty, members used and their
probabilities, the explanation. It is written with the column-wise encoder of
:mod:`stream_ensemble.core.confidence.json_bytes` -- one encode per value column, one join
per row -- and equals, byte for byte, ``orjson.dumps`` of the dict the engine used to build
per event (``tests/unit/test_engine_golden.py`` holds it to the frozen dict path).
"""

from __future__ import annotations

import numpy as np
import orjson

from stream_ensemble.core.confidence.json_bytes import Part, join_rows, number_column, object_parts, pattern_column
from stream_ensemble.serving.degraded import DEGRADED_REASONS
from stream_ensemble.serving.ensemble import ScoreBatch

_NOT_DEGRADED = b'false,"degraded_reason":null'
_DEGRADED = [b'true,"degraded_reason":' + orjson.dumps(r) for r in DEGRADED_REASONS]


def _degraded_parts(codes: np.ndarray) -> list[Part]:
    """``degraded`` / ``degraded_reason`` values: one literal for a clean batch, else a column."""
    if codes.size == 0 or not (codes >= 0).any():
        return [_NOT_DEGRADED]
    return [[_DEGRADED[c] if c >= 0 else _NOT_DEGRADED for c in codes.tolist()]]


def encode_bodies(batch: ScoreBatch, tags: list[str], class_names: list[str]) -> list[bytes]:
    """Encoded body of every row of ``batch``.

    Parameters
    ----------
    batch : ScoreBatch
        Arrays of n rows (see :class:`ScoreBatch`).
    tags : list of str, length n_models
        Member tags (``name@vN``) in pool order.
    class_names : list of str, length n_classes

    Returns
    -------
    list of bytes, length n
        JSON objects: ``probability``, ``decision``, ``label``, ``confidence``,
        ``prediction_set``, ``uncertainty``, ``models_used``, ``model_probabilities``,
        ``degraded`` and ``degraded_reason``, ``cache_hit`` (false), ``explanation`` and, for K > 2 classes, ``probabilities``.
    """
    proba = batch.proba
    n = proba.shape[0]
    if n == 0:
        return []
    binary = proba.shape[1] == 2
    # K > 2: "probability" is the decided class's; "probabilities" carries every class.
    top = proba[:, 1] if binary else proba[np.arange(n), batch.decision]
    labels = [orjson.dumps(name) for name in class_names]
    tags_b = [orjson.dumps(t) for t in tags]
    member = np.round(batch.member_positive, 6)
    ran = ~np.isnan(member)
    present = np.flatnonzero(ran.any(axis=0))  # members with a value in some row
    model_proba = object_parts(n, [tags[j] for j in present], [number_column(member[:, j]) for j in present],
                               ran[:, present])
    parts: list[Part] = [
        b'{"probability":', number_column(np.round(top, 6)),
        b',"decision":', number_column(batch.decision),
        b',"label":', [labels[d] for d in batch.decision.tolist()],
        b',"confidence":', number_column(np.round(batch.confidence, 6)),
        b',"prediction_set":', pattern_column(batch.prediction_set, lambda row: orjson.dumps(np.flatnonzero(row).tolist())),
        b',"uncertainty":', *object_parts(n, list(batch.uncertainty), [number_column(np.round(v, 6)) for v in batch.uncertainty.values()]),
        b',"models_used":', pattern_column(batch.used, lambda row: b"[" + b",".join(tags_b[j] for j in np.flatnonzero(row)) + b"]"),
        b',"model_probabilities":', *model_proba,
        b',"degraded":', *_degraded_parts(batch.degraded),
        b',"cache_hit":false,"explanation":', *batch.explanation_parts(),
    ]
    if not binary:
        per_class = np.round(proba, 6)
        parts += [b',"probabilities":', *object_parts(n, class_names, [number_column(per_class[:, k]) for k in range(len(class_names))])]
    parts.append(b"}")
    return join_rows(n, parts)
