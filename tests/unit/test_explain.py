"""Explanation payload: levels, reasons, top contributors, the additivity invariant, occlusion."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from stream_ensemble.core.confidence import (
    EXCLUSION_CODES,
    ExclusionReason,
    ExplainLevel,
    ExplanationInputs,
    build_explanations,
    exclusion_code,
    occlusion_attribution,
    parse_explain_level,
    round_sig,
)
from stream_ensemble.errors import CombinerError, ConfigError

NAMES = ["lr", "tree", "nb", "mlp"]


def _batch(n: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    m = len(NAMES)
    proba = rng.uniform(0.01, 0.99, size=(n, m))
    used = rng.uniform(size=(n, m)) < 0.7
    used[:, 0] = True  # at least one member per row
    exclusion = np.where(used, -1, rng.integers(0, len(EXCLUSION_CODES), size=(n, m)))
    proba[exclusion == exclusion_code("failed")] = np.nan  # failed members have no output
    return {"proba": proba, "used": used, "exclusion": exclusion, "rng": rng}


def _explain(b: dict[str, Any], weights: np.ndarray, baseline: np.ndarray, contrib: np.ndarray,
             space: str, level: str = "summary", **kw: Any) -> list[dict[str, Any] | None]:
    n = b["proba"].shape[0]
    return build_explanations(ExplanationInputs(
        level, NAMES, b["proba"], b["used"], b["exclusion"], weights, baseline, contrib, space,
        agreement=np.full(n, 0.75), cache_hit=np.zeros(n, dtype=bool), selection_id="sel-1", **kw,
    ))


def _payload_sum(e: dict[str, Any]) -> float:
    return e["baseline"] + sum(m["contribution"] for m in e["members"] if m["used"])


def _rel_ok(got: float, want: float, scale: float) -> bool:
    # Rounding x to 6 significant digits moves it by at most 5e-6 * |x| (worst case at a leading
    # digit 1), so a sum of rounded terms is within 5e-6 * sum|terms| of the exact sum.
    return abs(got - want) <= 5e-6 * max(scale, abs(want)) + 1e-12


def test_probability_space_average_invariant() -> None:
    b = _batch(200, seed=0)
    used, p = b["used"], np.nan_to_num(b["proba"])
    w = used / used.sum(axis=1, keepdims=True)
    contrib = w * p
    truth = np.array([p[i, used[i]].mean() for i in range(p.shape[0])])  # independent oracle
    out = _explain(b, w, np.zeros(200), contrib, "probability")
    for i, e in enumerate(out):
        assert e is not None and e["space"] == "probability"
        scale = sum(abs(m["contribution"]) for m in e["members"])
        assert _rel_ok(_payload_sum(e), truth[i], scale)
        assert _rel_ok(e["score"], truth[i], scale)


def test_log_odds_space_invariant() -> None:
    b = _batch(200, seed=1)
    used, p = b["used"], np.nan_to_num(b["proba"], nan=0.5)
    rng = b["rng"]
    coef = rng.uniform(0.2, 1.5, size=len(NAMES))
    bias = -0.3
    logit = np.log(p / (1 - p))
    w = np.where(used, coef, 0.0)
    contrib = w * logit
    out = _explain(b, w, np.full(200, bias), contrib, "log_odds")
    for i, e in enumerate(out):
        assert e is not None
        z = bias + sum(coef[j] * logit[i, j] for j in range(len(NAMES)) if used[i, j])
        scale = abs(bias) + sum(abs(m["contribution"]) for m in e["members"])
        assert _rel_ok(_payload_sum(e), z, scale)
        prob = 1 / (1 + math.exp(-e["score"]))
        assert prob == pytest.approx(1 / (1 + math.exp(-z)), rel=1e-5)


def test_hand_payload_reasons_top_and_rounding() -> None:
    proba = np.array([[0.123456789, 0.5, np.nan, 0.9]])
    used = np.array([[True, True, False, True]])
    exclusion = np.array([[None, None, "failed", None]], dtype=object)
    contrib = np.array([[0.1, -0.5, 0.0, 0.05]])
    w = np.array([[1 / 3, 1 / 3, 0.0, 1 / 3]])
    (e,) = build_explanations(ExplanationInputs(
        "summary", NAMES, proba, used, exclusion, w, np.array([0.2]), contrib, "log_odds",
        np.array([2 / 3]), np.array([True]), ["row-sel"],
    ))
    assert e is not None
    assert [m["reason"] for m in e["members"]] == [None, None, "failed", None]
    assert e["members"][0]["proba"] == 0.123457
    assert e["members"][2]["proba"] is None
    assert e["members"][0]["weight"] == 0.333333
    assert e["top"] == [
        {"model": "tree", "contribution": -0.5},
        {"model": "lr", "contribution": 0.1},
        {"model": "mlp", "contribution": 0.05},
    ]
    assert e["score"] == pytest.approx(0.2 + 0.1 - 0.5 + 0.05)
    assert e["agreement"] == 0.666667 and e["cache_hit"] is True
    assert e["selection_id"] == "row-sel"
    assert "feature_attribution" not in e


def test_top_lists_only_used_members_and_ties_by_member_order() -> None:
    used = np.array([[True, False, True, False]])
    exclusion = np.array([[-1, exclusion_code("over_budget"), -1, 5]])
    contrib = np.array([[0.2, 0.0, -0.2, 0.0]])
    (e,) = build_explanations(ExplanationInputs(
        "summary", NAMES, np.full((1, 4), 0.5), used, exclusion, np.full((1, 4), 0.5),
        np.zeros(1), contrib, "probability", np.ones(1), np.zeros(1, bool), "s",
    ))
    assert e is not None
    assert [t["model"] for t in e["top"]] == ["lr", "nb"]
    assert [m["reason"] for m in e["members"]] == [None, "over_budget", None, "not_selected"]


def test_payload_is_strict_json() -> None:
    b = _batch(50, seed=2)
    w = b["used"] / b["used"].sum(axis=1, keepdims=True)
    out = _explain(b, w, np.zeros(50), w * np.nan_to_num(b["proba"]), "probability")
    text = json.dumps(out, allow_nan=False)
    assert json.loads(text) == out
    e = out[0]
    assert e is not None
    assert all(type(v) in (float, type(None)) for m in e["members"] for v in (m["proba"],))
    assert set(e) == {"members", "baseline", "space", "score", "agreement", "cache_hit",
                      "selection_id", "top"}


def test_levels_none_full_and_unknown() -> None:
    b = _batch(3, seed=3)
    w = np.where(b["used"], 1.0, 0.0)
    c = np.zeros((3, 4))
    assert _explain(b, w, np.zeros(3), c, "p", level="none") == [None, None, None]
    attr = [{"method": "occlusion", "row": i} for i in range(3)]
    full = _explain(b, w, np.zeros(3), c, "p", level="full", feature_attribution=attr)
    assert [e["feature_attribution"] for e in full] == attr  # type: ignore[index]
    assert parse_explain_level(None) is ExplainLevel.SUMMARY
    assert parse_explain_level("full") is ExplainLevel.FULL
    with pytest.raises(ConfigError):
        parse_explain_level("verbose")
    with pytest.raises(ConfigError):
        _explain(b, w, np.zeros(3), c, "p", level="everything")


def test_inconsistent_inputs_raise() -> None:
    b = _batch(3, seed=4)
    w = np.where(b["used"], 1.0, 0.0)
    c = np.zeros((3, 4))
    bad = dict(b)
    bad["exclusion"] = np.where(b["used"], -1, -1)
    bad["used"] = b["used"].copy()
    bad["used"][0, 1] = False
    with pytest.raises(CombinerError):  # unused member without a reason
        _explain(bad, w, np.zeros(3), c, "p")
    bad["exclusion"] = np.full((3, 4), 99)
    with pytest.raises(CombinerError):
        _explain(bad, w, np.zeros(3), c, "p")
    with pytest.raises(CombinerError):
        _explain(b, w, np.zeros(2), c, "p")
    with pytest.raises(ConfigError):
        exclusion_code("bored")
    assert exclusion_code(ExclusionReason.TIMED_OUT) == 2


def test_round_sig() -> None:
    out = round_sig(np.array([1234567.89, -0.000123456789, np.nan, np.inf, 0.0]))
    assert out[0] == 1234570.0 and out[1] == -0.000123457
    assert math.isnan(out[2]) and math.isinf(out[3]) and out[4] == 0.0


def test_occlusion_linear_oracle_single_call() -> None:
    rng = np.random.default_rng(5)
    n, d = 7, 4
    X = rng.normal(size=(n, d))
    ref = rng.normal(size=d)
    coef = np.array([1.0, -2.0, 0.5, 3.0])
    calls: list[tuple[int, ...]] = []

    def score(M: np.ndarray) -> np.ndarray:
        calls.append(M.shape)
        return M @ coef + 0.7

    a = occlusion_attribution(score, X, ref, ["a", "b", "c", "d"])
    assert calls == [(n * (d + 1) + 1, d)]
    np.testing.assert_allclose(a.values, (X - ref) * coef)
    np.testing.assert_allclose(a.residual, 0.0, atol=1e-12)
    assert a.reference_score == pytest.approx(ref @ coef + 0.7)
    dicts = a.to_dicts(top_k=2)
    top = np.argsort(-np.abs((X[0] - ref) * coef))[:2]
    assert [f["feature"] for f in dicts[0]["features"]] == [["a", "b", "c", "d"][j] for j in top]
    json.dumps(dicts, allow_nan=False)


def test_occlusion_nonlinear_has_residual() -> None:
    rng = np.random.default_rng(6)
    X = rng.normal(size=(20, 3)) * 2
    ref = np.zeros(3)

    def score(M: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(M[:, 0] * M[:, 1] + M[:, 2])))

    a = occlusion_attribution(score, X, ref, ["x", "y", "z"])
    assert np.max(np.abs(a.residual)) > 0.01
    np.testing.assert_allclose(a.score - a.reference_score - a.values.sum(1), a.residual)


def test_occlusion_rejects_bad_shapes() -> None:
    with pytest.raises(CombinerError):
        occlusion_attribution(lambda M: M[:, 0], np.zeros((2, 3)), np.zeros(2), ["a", "b", "c"])
    with pytest.raises(CombinerError):
        occlusion_attribution(lambda M: M[:2, 0], np.zeros((2, 3)), np.zeros(3), ["a", "b", "c"])


def test_occlusion_cost(capsys: pytest.CaptureFixture[str]) -> None:
    """Cost per event, d = 30, logistic regression score, n = 1,000 (printed with -s)."""
    rng = np.random.default_rng(7)
    d, n = 30, 1000
    X = rng.normal(size=(2000, d))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    lr = LogisticRegression().fit(X, y)
    names = [f"f{j}" for j in range(d)]
    ref = np.median(X, axis=0)
    occlusion_attribution(lambda M: lr.predict_proba(M)[:, 1], X[:n], ref, names)  # warm-up
    t0 = time.perf_counter()
    occlusion_attribution(lambda M: lr.predict_proba(M)[:, 1], X[:n], ref, names)
    per_event_us = (time.perf_counter() - t0) / n * 1e6
    with capsys.disabled():
        print(f"\nocclusion attribution, d=30, logistic regression: {per_event_us:.1f} us/event")
    # Loose bound: catches per-feature model-call loops (>> 100 us/event), not machine noise.
    assert per_event_us < 200


def test_round_sig_keeps_tiny_finite_values() -> None:
    """A member probability of ~1e-310 used to overflow to NaN and be reported as null."""
    from stream_ensemble.core.confidence.rounding import json_list, round_sig

    x = np.array([[1.23456789e-310, 0.5], [2.5e-320, 1e-300]])
    r = round_sig(x)
    assert r.shape == x.shape and np.all(np.isfinite(r))
    assert r[0, 0] == pytest.approx(1.23457e-310, rel=1e-5) and r[0, 1] == 0.5 and r[1, 1] == 1e-300
    assert None not in json_list(x.ravel())


@pytest.mark.parametrize("n, m", [(300, 4), (40, 1), (7, 6), (1, 0), (0, 3)])
@pytest.mark.parametrize("level", ["summary", "full", "none"])
def test_encoded_bytes_equal_the_dicts_encoded(n: int, m: int, level: str) -> None:
    """The column-wise encoder writes exactly orjson.dumps of build_explanations' dicts."""
    import orjson

    from stream_ensemble.core.confidence.explanation_json import explanation_parts
    from stream_ensemble.core.confidence.json_bytes import join_rows

    rng = np.random.default_rng(n * 10 + m)
    names = [f"m{j}@v1" for j in range(m)]
    for all_used in (False, True):
        proba = rng.uniform(size=(n, m))
        proba[rng.uniform(size=(n, m)) < 0.1] = np.nan
        if n and m:
            proba[0, 0] = 1.2345e-310  # rounded one by one (the overflow case)
        used = np.ones((n, m), dtype=bool) if all_used else rng.uniform(size=(n, m)) < 0.7
        exclusion = np.where(used, -1, rng.integers(0, len(EXCLUSION_CODES), size=(n, m)))
        w = np.where(used, rng.uniform(size=(n, m)), 0.0)
        contrib = np.where(used, rng.normal(size=(n, m)), 0.0)
        contrib[:, : min(m, 2)] = np.round(contrib[:, : min(m, 2)], 1)  # ties in |contribution|
        attribution = [{"f": float(i)} for i in range(n)] if level == "full" else None
        for sel in ("s1", [f"s{i}" for i in range(n)]):
            args = (level, names, proba, used, exclusion, w, rng.normal(size=n), contrib, "log_odds",
                    rng.uniform(size=n), rng.uniform(size=n) < 0.5, sel, attribution)
            dicts = build_explanations(ExplanationInputs(*args))
            parts = explanation_parts(ExplanationInputs(*args))
            if level == "none":
                assert parts is None and dicts == [None] * n
                continue
            assert parts is not None
            assert join_rows(n, parts) == [orjson.dumps(d) for d in dicts]
