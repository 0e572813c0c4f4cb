"""The explanation payload encoded straight to JSON bytes, column by column.

:func:`explanation_parts` takes the inputs of
:func:`~stream_ensemble.core.confidence.explanation.build_explanations` and gives a template
whose rows are the bytes ``orjson.dumps`` writes for that function's dicts (a unit test holds
the two to byte equality), without building a dict per member and row: each number column is
encoded once per batch (:mod:`.json_bytes`), then every row is one join of the template.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import orjson

from stream_ensemble.core.confidence.explanation import EXCLUSION_CODES, ExplanationInputs, prepare_explanations
from stream_ensemble.core.confidence.json_bytes import TRUE_FALSE, Part, bool_column, join_rows, number_column
from stream_ensemble.core.confidence.rounding import round_sig

#: ``_REASONS[code]``: the encoded reason of an exclusion code; the last entry (code -1) is null.
_REASONS: tuple[bytes, ...] = tuple(orjson.dumps(r.value) for r in EXCLUSION_CODES) + (b"null",)


def explanation_parts(inputs: ExplanationInputs) -> list[Part] | None:
    """Template parts of every row's explanation (``None`` at level ``none``).

    ``join_rows(n, parts)`` gives each row's bytes; a caller that encodes a larger document
    around the explanation splices the parts into its own template, so each row is joined once.

    Parameters
    ----------
    inputs : ExplanationInputs
        As for :func:`~stream_ensemble.core.confidence.explanation.build_explanations`
        (member arrays of shape (n, m), row arrays of shape (n,)).

    Returns
    -------
    list of Part or None

    Raises
    ------
    ConfigError, CombinerError
        As :func:`build_explanations`.
    """
    prep = prepare_explanations(inputs)
    space = inputs.space
    if prep is None:
        return None
    n, m = prep.n, prep.m
    names_b = [orjson.dumps(name) for name in prep.names]
    p_r, w_r, c_r = round_sig(prep.proba), round_sig(prep.weights), round_sig(prep.contributions)
    parts: list[Part] = [b'{"members":[']
    for j in range(m):
        codes, use = prep.codes[:, j], prep.used[:, j]
        # Constant columns (a member used by every row, so reason null) are written as constants.
        reason: Part = _REASONS[codes[0]] if n and (codes == codes[0]).all() else [_REASONS[c] for c in codes.tolist()]
        used_b: Part = TRUE_FALSE[bool(use[0])] if n and (use == use[0]).all() else bool_column(use)
        parts += [b"," if j else b"", b'{"model":' + names_b[j] + b',"used":', used_b,
                  b',"reason":', reason, b',"proba":', number_column(p_r[:, j]),
                  b',"weight":', number_column(w_r[:, j]), b',"contribution":', number_column(c_r[:, j]), b"}"]
    sel = prep.selection_id
    parts += [b'],"baseline":', number_column(round_sig(prep.baseline)),
              b',"space":' + orjson.dumps(space) + b',"score":', number_column(round_sig(prep.score)),
              b',"agreement":', number_column(round_sig(prep.agreement)),
              b',"cache_hit":', bool_column(prep.cache_hit),
              b',"selection_id":', orjson.dumps(sel) if isinstance(sel, str) else [orjson.dumps(s) for s in sel],
              b',"top":', *_top(prep.order, prep.n_top, c_r, names_b)]
    if prep.full:
        attr = prep.feature_attribution
        parts += [b',"feature_attribution":', b"null" if attr is None else [orjson.dumps(a) for a in attr]]
    parts.append(b"}")
    return parts


def _top(order: npt.NDArray[np.int64], n_top: npt.NDArray[np.int64], c_r: npt.NDArray[np.float64],
         names_b: list[bytes]) -> list[Part]:
    """Parts of the ``top`` list of every row: its first ``n_top`` members of ``order``."""
    n = order.shape[0]
    rows = np.arange(n)
    entry_parts = [[b'{"model":', [names_b[j] for j in order[:, k].tolist()],
                    b',"contribution":', number_column(c_r[rows, order[:, k]]), b"}"]
                   for k in range(order.shape[1])]
    if n == 0 or (n_top == n_top[0]).all():  # the common case: as many top members in every row
        inline: list[Part] = [b"["]
        for k in range(int(n_top[0]) if n else 0):
            inline += [b"," if k else b"", *entry_parts[k]]
        return inline + [b"]"]
    entries = [join_rows(n, e) for e in entry_parts]
    out: list[bytes] = [b"[]"] * n
    for count in np.unique(n_top).tolist():
        if count == 0:
            continue
        idx = np.flatnonzero(n_top == count).tolist()
        parts: list[Part] = [b"["]
        for k in range(count):
            parts += [b"," if k else b"", [entries[k][i] for i in idx]]
        for i, value in zip(idx, join_rows(len(idx), parts + [b"]"])):
            out[i] = value
    return [out]
