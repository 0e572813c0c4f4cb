from __future__ import annotations

import numpy as np

from stream_ensemble.core.data.features import FeatureEncoder


def make() -> FeatureEncoder:
    cols = {"a": [1.0, 2.0, None, 4.0], "b": [10, 10, 20, 30], "c": ["x", "y", "x", None]}
    return FeatureEncoder(["a", "b"], ["c"]).fit(cols)


def test_records_and_columns_encode_identically() -> None:
    enc = make()
    cols = {"a": [1.0, None], "b": [10, 30], "c": ["y", "zzz"]}
    recs = [{"a": 1.0, "b": 10, "c": "y"}, {"b": 30, "c": "zzz"}]
    batch = enc.transform_records(recs)
    assert batch.ok.all()
    np.testing.assert_allclose(batch.X, enc.transform_columns(cols))
    assert enc.output_names_ == ["a", "b", "c=x", "c=y"]
    # missing "a" imputes the median (2.0); unseen category -> all zeros
    a_std = (2.0 - enc.mean_[0]) / enc.scale_[0]
    assert batch.X[1, 0] == a_std and batch.X[1, 2:].sum() == 0


def test_bad_rows_are_reported_not_fatal() -> None:
    enc = make()
    batch = enc.transform_records([{"a": 1, "b": 2, "c": "x"}, {"a": "oops", "b": 2}, {"a": 1, "b": 2, "c": [1]}])
    assert batch.ok.tolist() == [True, False, False]
    assert batch.X.shape == (1, enc.n_outputs)
    assert "a" in batch.errors[1] and "c" in batch.errors[2]


def test_a_string_is_never_a_number_for_a_numeric_feature() -> None:
    enc = make()
    # numpy alone parses "17.99" and "nan" as floats: the encoder must not.
    batch = enc.transform_records([{"a": "17.99", "b": 2}, {"a": 1.0, "b": "nan"}, {"a": 1.0, "b": 2}])
    assert batch.ok.tolist() == [False, False, True]
    assert "a" in batch.errors[0] and "string" in batch.errors[0] and "b" in batch.errors[1]
    assert batch.kinds == {0: "feature_type", 1: "feature_type"}


def test_imputed_counts_absent_and_null_features_per_row() -> None:
    enc = make()
    recs = [{"a": 1.0, "b": 2, "c": "x"}, {"a": None, "b": 2}, {"b": 3, "c": None, "nonce": "zz"}, {"a": 1, "b": 2, "c": "new"}]
    batch = enc.transform_records(recs)
    assert batch.ok.all()
    assert batch.imputed.tolist() == [0, 2, 2, 0]  # an unseen category is a value, not a missing one


def test_too_few_known_features_are_refused_per_row() -> None:
    enc = make()
    recs = [{"a": 1.0, "b": 2, "c": "x"}, {"mean_radus": 1.0, "b": None}, {"a": 1.0}, {"a": 1.0, "b": 2}]
    batch = enc.transform_records(recs, min_known_share=0.5)
    assert batch.ok.tolist() == [True, False, False, True]  # 0/3 and 1/3 known are below half; 2/3 is not
    assert batch.kinds == {1: "too_few_features", 2: "too_few_features"}
    assert "only 0 of the 3" in batch.errors[1] and "unknown features: mean_radus" in batch.errors[1]
    assert batch.X.shape == (2, enc.n_outputs)
    assert enc.transform_records(recs).ok.all()  # the default share 0 refuses nothing


def test_absurd_standardised_values_are_refused_per_row() -> None:
    enc = make()
    recs = [{"a": 1e308, "b": 2}, {"a": -1e308, "b": 2}, {"a": 1.0, "b": 1e12}, {"a": 1.0, "b": 2}, {"a": 1.0, "b": 1e4}]
    batch = enc.transform_records(recs)
    assert batch.ok.tolist() == [False, False, False, True, True]
    assert batch.kinds == {0: "out_of_range", 1: "out_of_range", 2: "out_of_range"}
    assert "'a'" in batch.errors[0] and "'b'" in batch.errors[2]
    assert np.isfinite(batch.X).all()


def test_key_rows_tell_apart_what_changes_a_score_and_nothing_else() -> None:
    """The cache key's bytes: a missing value is not its median, an ignored field changes
    nothing, two unseen categories are one (both encode as all zeros, imputed 0)."""
    enc = make()
    recs = [{"a": 2.0, "b": 10, "c": "x"}, {"b": 10, "c": "x"}, {"a": 2.0, "b": 10, "c": "x", "nonce": "n1"},
            {"a": 2.0, "b": 10, "c": "new1"}, {"a": 2.0, "b": 10, "c": "new2"}, {"a": 2.0, "b": 10}]
    batch = enc.transform_records(recs)
    rows = [r.tobytes() for r in batch.key_rows]
    assert batch.key_rows.shape == (6, 3) and batch.key_rows.dtype == np.float64
    assert rows[0] != rows[1] and batch.X[0].tolist() == batch.X[1].tolist()  # same X, imputed 0 vs 1
    assert rows[0] == rows[2]
    assert rows[3] == rows[4] != rows[5]  # unseen vs missing category: imputed differs
    assert batch.imputed.tolist() == [0, 1, 0, 0, 0, 1]
