"""Oracle tests for each combination rule (hand-computed fixtures) and rule-specific behaviour."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import expit, logit
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier

from stream_ensemble.core.combiners import (
    EPS,
    Boosting,
    CombinerName,
    GeometricMean,
    HardVoting,
    RankAverage,
    SoftVoting,
    Stacking,
    Weighted,
    geometric_mean,
    hard_vote,
    make_combiner,
    out_of_fold_proba,
    soft_vote,
)
from stream_ensemble.errors import CombinerError, ConfigError

# 4 events x 3 models, positive-class probabilities; row 3 has no member at all.
P1 = np.array([[0.9, 0.6, 0.2],
               [0.3, np.nan, 0.8],
               [0.7, np.nan, np.nan],
               [np.nan, np.nan, np.nan]])
MASK = ~np.isnan(P1)
P = np.stack([1.0 - P1, P1], axis=2)


def log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-15, 1.0))))


# ---------------------------------------------------------------- voting / averaging oracles

SQRT = np.sqrt(12.0 / 7.0)  # geometric mean of odds 3/7 and 4 for row 1
ORACLES = {
    "soft": [1.7 / 3, 0.55, 0.7, 0.5],
    "hard": [2 / 3, 0.5, 1.0, 0.5],
    "weighted": [2.7 / 6, 2.7 / 4, 0.7, 0.5],  # weights (1, 2, 3)
    "geometric": [0.6, SQRT / (1 + SQRT), 0.7, 0.5],  # log-odds mean of row 0 is log(3/2)
}


@pytest.mark.parametrize(("rule", "func", "estimator"), [
    ("soft", soft_vote, SoftVoting()),
    ("hard", hard_vote, HardVoting()),
    ("geometric", geometric_mean, GeometricMean()),
])
def test_unweighted_rules_match_hand_computed_oracle(rule, func, estimator) -> None:  # type: ignore[no-untyped-def]
    expected = np.column_stack([1 - np.array(ORACLES[rule]), ORACLES[rule]])
    np.testing.assert_allclose(func(P, MASK), expected, atol=1e-12)
    np.testing.assert_allclose(estimator.predict_proba(P, MASK), expected, atol=1e-12)


def test_weighted_rule_matches_oracle_and_renormalises_over_present() -> None:
    expected = np.column_stack([1 - np.array(ORACLES["weighted"]), ORACLES["weighted"]])
    np.testing.assert_allclose(soft_vote(P, MASK, weights=[1, 2, 3]), expected, atol=1e-12)
    np.testing.assert_allclose(Weighted(weights=[1, 2, 3]).predict_proba(P, MASK), expected,
                               atol=1e-12)
    np.testing.assert_allclose(Weighted(weights=[10, 20, 30]).predict_proba(P, MASK), expected,
                               atol=1e-12)


def test_weighted_geometric_mean_oracle() -> None:
    # Row 0 with weights (1, 0, 1): log-odds mean (log 9 + log 1/4) / 2 = log(3/2) -> 0.6.
    out = GeometricMean(weights=[1.0, 0.0, 1.0]).predict_proba(P, MASK)
    assert out[0, 1] == pytest.approx(0.6, abs=1e-12)
    # Row 2: only member 0 present -> its own probability.
    assert out[2, 1] == pytest.approx(0.7, abs=1e-12)


def test_zero_weight_present_members_fall_back_to_prior() -> None:
    comb = Weighted(weights=[0.0, 1.0, 1.0])
    out = comb.predict_proba(P, MASK)
    np.testing.assert_allclose(out[2], [0.5, 0.5])  # only the zero-weight member is present
    fitted = Weighted(weights=[0.0, 1.0, 1.0]).fit(P[:3], np.array([0, 0, 1]), MASK[:3])
    np.testing.assert_allclose(fitted.predict_proba(P, MASK)[2], [2 / 3, 1 / 3])


def test_contributions_oracles_for_averaging_rules() -> None:
    soft = SoftVoting().contributions(P, MASK)
    np.testing.assert_allclose(soft.values[0], [0.3, 0.2, 0.2 / 3])
    np.testing.assert_allclose(soft.values[1], [0.15, 0.0, 0.4])
    np.testing.assert_allclose(soft.baseline, [0.0, 0.0, 0.0, 0.5])
    hard = HardVoting().contributions(P, MASK)
    np.testing.assert_allclose(hard.values[0], [1 / 3, 1 / 3, 0.0])
    assert hard.space == "vote_fraction"
    weighted = Weighted(weights=[1, 2, 3]).contributions(P, MASK)
    np.testing.assert_allclose(weighted.values[1], [0.3 / 4, 0.0, 2.4 / 4])
    geo = GeometricMean().contributions(P, MASK)
    np.testing.assert_allclose(geo.values[0], np.log([9.0, 1.5, 0.25]) / 3)
    assert geo.space == "log_odds"
    assert geo.to_probability(np.array([np.log(1.5)]))[0] == pytest.approx(0.6)


def test_effective_weights_oracle() -> None:
    w = Weighted(weights=[1, 2, 3]).effective_weights(MASK)
    np.testing.assert_allclose(w, np.array([[1, 2, 3], [1.5, 0, 4.5], [6, 0, 0], [0, 0, 0]]) / 6)


def test_all_false_row_uses_fitted_prior() -> None:
    y = np.array([0, 0, 0, 1])
    full = np.nan_to_num(P, nan=0.5)
    comb = SoftVoting().fit(full, y)
    np.testing.assert_allclose(comb.predict_proba(P, MASK)[3], [0.75, 0.25])
    np.testing.assert_allclose(comb.contributions(P, MASK).baseline[3], 0.25)


def test_hard_vote_multiclass_ties_stay_fractions() -> None:
    P3 = np.array([[[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]]])
    np.testing.assert_allclose(hard_vote(P3), [[0.5, 0.0, 0.5]])
    # A member's own tie goes to the lower class index.
    np.testing.assert_allclose(hard_vote(np.array([[[0.5, 0.5]]])), [[1.0, 0.0]])


def test_geometric_mean_clips_exact_zero_and_one() -> None:
    out = geometric_mean(np.array([[[1.0, 0.0], [0.0, 1.0]]]))
    np.testing.assert_allclose(out, [[0.5, 0.5]])
    one = geometric_mean(np.array([[[0.0, 1.0]]]))
    assert one[0, 1] == pytest.approx(1 - EPS)


# ------------------------------------------------------------------------------- weighted fit

def member_probas(y: np.ndarray, rng: np.random.Generator, qualities: list[float]) -> np.ndarray:
    """Binary member probabilities; quality 0 means pure noise (independent of y)."""
    sign = 2 * y[:, None] - 1
    q = np.array(qualities)
    z = q * sign + rng.normal(0, 1, (len(y), len(q)))
    z[:, q == 0] = rng.normal(0, 3, (len(y), int((q == 0).sum())))  # confident noise
    p1 = expit(z)
    return np.stack([1 - p1, p1], axis=2)


def test_weighted_fit_downweights_noise_and_beats_soft_voting() -> None:
    rng = np.random.default_rng(0)
    y_fit, y_test = rng.integers(0, 2, 800), rng.integers(0, 2, 800)
    # Two equally good independent members and confident noise: about (0.5, 0.5, 0).
    P_fit = member_probas(y_fit, rng, [1.5, 1.5, 0.0])
    P_test = member_probas(y_test, rng, [1.5, 1.5, 0.0])
    comb = Weighted().fit(P_fit, y_fit)
    assert np.all(comb.weights_ >= 0)
    assert comb.weights_.sum() == pytest.approx(1.0)
    assert comb.weights_[2] < 0.02
    np.testing.assert_allclose(comb.weights_[:2], 0.5, atol=0.1)
    weighted_loss = log_loss(comb.predict_proba(P_test), y_test)
    soft_loss = log_loss(soft_vote(P_test), y_test)
    assert weighted_loss < soft_loss - 0.05


def test_weighted_fit_with_missing_members() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 600)
    P_fit = member_probas(y, rng, [1.5, 1.5, 0.0])
    mask = rng.random((600, 3)) < 0.7
    P_fit[~mask] = np.nan
    comb = Weighted().fit(P_fit, y, mask)
    assert comb.weights_[2] < 0.02
    np.testing.assert_allclose(comb.weights_[:2], 0.5, atol=0.1)


def test_explicit_weights_are_validated() -> None:
    with pytest.raises(ConfigError):
        Weighted(weights=[1, -1, 1]).predict_proba(P, MASK)
    with pytest.raises(ConfigError):
        Weighted(weights=[0, 0, 0]).fit(P[:3], np.array([0, 1, 1]), MASK[:3])
    with pytest.raises(CombinerError):
        Weighted(weights=[1, 1]).predict_proba(P, MASK)
    with pytest.raises(ConfigError):
        soft_vote(P, MASK, weights=[1, np.nan, 1])


# ---------------------------------------------------------------------------------- rank

def test_rank_average_ecdf_oracle() -> None:
    fit_p1 = np.array([[0.1, 0.2], [0.4, 0.2], [0.6, 0.5], [0.9, 0.7]])
    y = np.array([0, 0, 1, 1])
    comb = RankAverage().fit(np.stack([1 - fit_p1, fit_p1], axis=2), y)
    con = comb.contributions(np.stack([1 - fit_p1, fit_p1], axis=2))
    # Mid-rank ECDF: distinct scores get (i + 0.5) / 4; the tied 0.2s share (0 + 2) / 8.
    np.testing.assert_allclose(con.values * 2, [[0.125, 0.25], [0.375, 0.25],
                                                [0.625, 0.625], [0.875, 0.875]])
    new = np.array([[0.5, 0.2], [0.0, 0.99]])
    con = comb.contributions(np.stack([1 - new, new], axis=2))
    np.testing.assert_allclose(con.values, [[0.25, 0.125], [0.0, 0.5]])
    out = comb.predict_proba(np.stack([1 - new, new], axis=2))
    np.testing.assert_allclose(out[:, 1], expit(comb.slope_ * np.array([0.375, 0.5])
                                                + comb.intercept_))
    assert comb.slope_ > 0


def test_rank_average_refuses_member_never_present() -> None:
    mask = np.array([[True, False]] * 4)
    P2 = np.full((4, 2, 2), 0.5)
    with pytest.raises(CombinerError, match="absent from every fit row"):
        RankAverage().fit(P2, np.array([0, 1, 0, 1]), mask)


# ---------------------------------------------------------------------------------- stacking

@pytest.fixture(scope="module")
def oof_problem() -> dict[str, np.ndarray]:
    X, y = make_classification(n_samples=900, n_features=8, n_informative=4,
                               flip_y=0.05, random_state=0)
    members = [LogisticRegression(max_iter=500), GaussianNB(),
               DecisionTreeClassifier(max_depth=3, random_state=0)]
    X_tr, y_tr, X_te, y_te = X[:600], y[:600], X[600:], y[600:]
    P_oof = out_of_fold_proba(members, X_tr, y_tr, cv=5, random_state=0)
    P_te = np.stack([m.fit(X_tr, y_tr).predict_proba(X_te) for m in members], axis=1)
    return {"P_oof": P_oof, "y_tr": y_tr, "P_te": P_te, "y_te": y_te}


def test_out_of_fold_predictions_never_see_their_row() -> None:
    X, y = make_classification(n_samples=200, random_state=1, flip_y=0.2)
    in_sample = KNeighborsClassifier(1).fit(X, y).predict_proba(X)
    assert np.mean(in_sample.argmax(1) == y) == 1.0  # 1-NN memorises its training rows
    oof = out_of_fold_proba([KNeighborsClassifier(1)], X, y, cv=5, random_state=0)
    assert oof.shape == (200, 1, 2)
    assert np.mean(oof[:, 0].argmax(1) == y) < 0.9


def test_stacking_on_oof_predictions(oof_problem: dict[str, np.ndarray]) -> None:
    comb = Stacking().fit(oof_problem["P_oof"], oof_problem["y_tr"])
    stacked = log_loss(comb.predict_proba(oof_problem["P_te"]), oof_problem["y_te"])
    members = [log_loss(oof_problem["P_te"][:, j], oof_problem["y_te"]) for j in range(3)]
    assert stacked < max(members)
    assert stacked < log_loss(soft_vote(oof_problem["P_te"]), oof_problem["y_te"]) + 0.01
    assert comb.meta_learner_.n_features_in_ == 3


def test_stacking_imputes_missing_member_with_its_fit_mean(
        oof_problem: dict[str, np.ndarray]) -> None:
    comb = Stacking().fit(oof_problem["P_oof"], oof_problem["y_tr"])
    P_te = oof_problem["P_te"][:20].copy()
    mask = np.ones((20, 3), bool)
    mask[:, 1] = False
    P_te[:, 1] = np.nan
    f = np.log(np.clip(P_te[:, :, 1], EPS, 1 - EPS) / np.clip(P_te[:, :, 0], EPS, 1 - EPS))
    f[:, 1] = comb.feature_means_[1]
    coef, b = comb.meta_learner_.coef_[0], comb.meta_learner_.intercept_[0]
    np.testing.assert_allclose(comb.predict_proba(P_te, mask)[:, 1], expit(b + f @ coef),
                               atol=1e-12)
    con = comb.contributions(P_te, mask)
    assert np.all(con.values[:, 1] == 0.0)
    np.testing.assert_allclose(con.baseline, b + coef @ comb.feature_means_)
    oof_f = np.log(np.clip(oof_problem["P_oof"][:, :, 1], EPS, 1 - EPS)
                   / np.clip(oof_problem["P_oof"][:, :, 0], EPS, 1 - EPS))
    np.testing.assert_allclose(comb.feature_means_, oof_f.mean(axis=0))


def test_stacking_with_nonlinear_meta_learner(oof_problem: dict[str, np.ndarray]) -> None:
    comb = Stacking(meta_learner=DecisionTreeClassifier(max_depth=2, random_state=0))
    comb.fit(oof_problem["P_oof"], oof_problem["y_tr"])
    out = comb.predict_proba(oof_problem["P_te"])
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    with pytest.raises(CombinerError, match="linear meta-learner"):
        comb.contributions(oof_problem["P_te"])
    assert comb.meta_learner is not comb.meta_learner_  # the parameter is cloned, not fit


def test_stacking_multiclass_uses_log_probability_features() -> None:
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    logits = 2.0 * np.eye(3)[y][:, None, :] + rng.normal(0, 1, (90, 2, 3))
    P3 = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    comb = Stacking().fit(P3, y)
    assert comb.meta_learner_.n_features_in_ == 6
    assert comb.predict_proba(P3).shape == (90, 3)


# ---------------------------------------------------------------------------------- boosting

@pytest.fixture(scope="module")
def boost_problem() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    return member_probas(y, rng, [1.5, 1.0, 0.5, 0.0]), y


def test_boosting_training_loss_decreases_every_stage(boost_problem) -> None:  # type: ignore[no-untyped-def]
    P4, y = boost_problem
    comb = Boosting(n_stages=30, learning_rate=0.3).fit(P4, y)
    assert comb.n_stages_ >= 5
    assert len(comb.train_loss_) == comb.n_stages_ + 1
    assert np.all(np.diff(comb.train_loss_) < 0)
    assert comb.train_loss_[0] == pytest.approx(log_loss(np.tile([0.5, 0.5], (len(y), 1)), y),
                                                abs=0.01)
    # Accumulated alphas are exactly the per-stage steps summed per member.
    members = comb.stage_members_
    expected = np.bincount(members[members >= 0], weights=comb.stage_alphas_[members >= 0],
                           minlength=4)
    np.testing.assert_allclose(comb.alpha_, expected)
    assert np.bincount(members[members >= 0]).max() > 1  # a member was picked again
    np.testing.assert_allclose(log_loss(comb.predict_proba(P4), y), comb.train_loss_[-1])


def test_boosting_first_stage_is_the_best_exact_line_search(boost_problem) -> None:  # type: ignore[no-untyped-def]
    P4, y = boost_problem
    comb = Boosting(n_stages=1, learning_rate=1.0).fit(P4, y)
    h = np.log(np.clip(P4[:, :, 1], EPS, 1 - EPS) / np.clip(P4[:, :, 0], EPS, 1 - EPS))
    F0 = logit(y.mean())

    def loss(a: float, col: np.ndarray) -> float:
        F = F0 + a * col
        return float(np.mean(np.logaddexp(0, F) - y * F))

    best = min(minimize_scalar(loss, args=(col,), bounds=(-10, 10), method="bounded",
                               options={"xatol": 1e-10}).fun
               for col in [*h.T, np.ones(len(y))])
    assert comb.train_loss_[1] == pytest.approx(best, abs=1e-9)
    assert comb.stage_members_[0] == 0  # the strongest member goes first


def test_boosting_missing_member_rescales_remaining_alphas(boost_problem) -> None:  # type: ignore[no-untyped-def]
    P4, y = boost_problem
    comb = Boosting(n_stages=20).fit(P4, y)
    row = P4[:1].copy()
    mask = np.array([[True, False, True, True]])
    row[0, 1] = np.nan
    h = np.log(np.clip(row[0, :, 1], EPS, 1 - EPS) / np.clip(row[0, :, 0], EPS, 1 - EPS))
    a = comb.alpha_
    scale = np.abs(a).sum() / np.abs(a[[0, 2, 3]]).sum()
    F = comb.intercept_ + scale * (a[0] * h[0] + a[2] * h[2] + a[3] * h[3])
    assert comb.predict_proba(row, mask)[0, 1] == pytest.approx(expit(F), abs=1e-12)
    np.testing.assert_allclose(comb.contributions(row, mask).values[0],
                               scale * a * np.where(mask[0], h, 0.0), atol=1e-12)


def test_boosting_huge_tol_stops_before_any_stage(boost_problem) -> None:  # type: ignore[no-untyped-def]
    P4, y = boost_problem
    comb = Boosting(tol=10.0).fit(P4, y)
    assert comb.n_stages_ == 0 and np.all(comb.alpha_ == 0)
    np.testing.assert_allclose(comb.predict_proba(P4)[:, 1], y.mean())


@pytest.mark.parametrize("params", [{"n_stages": 0}, {"learning_rate": 0.0},
                                    {"learning_rate": 1.5}, {"tol": -1.0},
                                    {"max_alpha": 0.0}])
def test_boosting_rejects_bad_hyperparameters(params, boost_problem) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError):
        Boosting(**params).fit(*boost_problem)


# --------------------------------------------------------------------- registry and validation

def test_make_combiner_builds_each_name() -> None:
    assert isinstance(make_combiner("soft_voting"), SoftVoting)
    assert isinstance(make_combiner(CombinerName.BOOSTING, n_stages=3), Boosting)
    assert make_combiner("weighted", weights=[1, 2]).weights == [1, 2]


def test_unknown_combiner_name_raises_config_error_listing_choices() -> None:
    with pytest.raises(ConfigError, match="unknown combiner 'median'.*soft_voting.*boosting"):
        make_combiner("median")


def test_unknown_parameter_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="accepted: learning_rate, max_alpha, n_stages, tol"):
        make_combiner("boosting", depth=3)


def test_invalid_inputs_raise_combiner_error() -> None:
    with pytest.raises(CombinerError, match="NaN"):
        soft_vote(P)  # mask=None means every member present, but some are NaN
    with pytest.raises(CombinerError, match=r"\[0, 1\]"):
        soft_vote(np.array([[[-0.1, 1.1]]]))
    with pytest.raises(CombinerError, match="shape"):
        soft_vote(np.ones((2, 3)))
    with pytest.raises(CombinerError, match="no example of class"):
        SoftVoting().fit(np.nan_to_num(P, nan=0.5), np.zeros(4, dtype=int))
    with pytest.raises(CombinerError, match="integer"):
        SoftVoting().fit(np.nan_to_num(P, nan=0.5), np.array([0.5, 1, 0, 1]))
