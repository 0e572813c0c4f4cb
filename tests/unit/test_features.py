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
