"""Bring your own models: `models add` / `ensemble build` on models trained with plain library code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from click.testing import CliRunner

from stream_ensemble.cli import main
from stream_ensemble.core.data.datasets import load_csv
from stream_ensemble.core.registry import Registry
from stream_ensemble.core.training.byom import add_member, build_ensemble
from stream_ensemble.errors import ConfigError
from stream_ensemble.serving.loading import load_with_smoke_rows
from stream_ensemble.serving.versions import smoke_problem
from tests.user_models import LABEL, POSITIVE, train_user_models, user_data


@pytest.fixture(scope="module")
def owner(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("byom")
    train, holdout, features = user_data()
    paths = train_user_models(base / "models", train, features)
    holdout.to_csv(base / "holdout.csv", index=False)
    return {"base": base, "paths": paths, "holdout": holdout, "features": features, "csv": base / "holdout.csv"}


def _cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def _add(reg: Path, name: str, file: Path, csv: Path, *extra: str) -> Any:
    return _cli("models", "add", name, "--file", str(file), "--features-from", str(csv), "--label", LABEL,
                "--positive", POSITIVE, "--holdout", str(csv), "--registry", str(reg), *extra)


def test_added_members_predict_what_the_user_model_predicts(owner: dict[str, Any], tmp_path: Path) -> None:
    import lightgbm as lgb
    import skops.io as sio
    import xgboost as xgb

    data = load_csv(owner["csv"], LABEL, POSITIVE)
    reg = Registry(tmp_path / "reg")
    X = owner["holdout"][owner["features"]]
    pos = (owner["holdout"][LABEL] == POSITIVE).to_numpy()
    want = {
        "xgb_ubj": xgb.Booster(model_file=str(owner["paths"]["xgb_ubj"])).inplace_predict(X.to_numpy()),
        "xgb_json": xgb.Booster(model_file=str(owner["paths"]["xgb_json"])).inplace_predict(X.to_numpy()),
        "lgbm": lgb.Booster(model_file=str(owner["paths"]["lgbm"])).predict(X.to_numpy()),
        "pipeline": sio.load(owner["paths"]["pipeline"], trusted=sio.get_untrusted_types(
            file=owner["paths"]["pipeline"])).predict_proba(X)[:, 1],  # classes_ sorted: malignant second
    }
    for key, path in owner["paths"].items():
        m = add_member(reg, key, path, data, owner["features"])
        assert (m["id"], m["version"], m["classes"]) == (key, 1, ["benign", "malignant"])
        est, _ = reg.load("models", key, 1)
        got = est.predict_proba(X.to_numpy())[:, 1]
        np.testing.assert_allclose(got, want[key], rtol=1e-6, atol=1e-7)
        assert m["metrics"]["accuracy"] == pytest.approx(np.mean((got > 0.5) == pos))
        assert m["cost"]["call_ms"] > 0 and m["cost"]["ms_per_1k"] >= m["cost"]["call_ms"]
    assert reg.manifest("models", "pipeline", 1)["family"] == "LogisticRegression"


def test_integer_labels_map_by_code_and_a_flipped_positive_is_reordered(owner: dict[str, Any], tmp_path: Path) -> None:
    frame = owner["holdout"].copy()
    frame[LABEL] = (frame[LABEL] == POSITIVE).astype(int)
    frame.to_csv(tmp_path / "coded.csv", index=False)
    reg = Registry(tmp_path / "reg")
    X = frame[owner["features"]].to_numpy()
    for positive, column in (("1", 1), ("0", 0)):  # positive 0: the booster's class-0 output must come second
        data = load_csv(tmp_path / "coded.csv", LABEL, positive)
        m = add_member(reg, "x", owner["paths"]["xgb_ubj"], data, owner["features"])
        est, _ = reg.load("models", "x", m["version"])
        import xgboost as xgb

        p1 = xgb.Booster(model_file=str(owner["paths"]["xgb_ubj"])).inplace_predict(X)
        np.testing.assert_allclose(est.predict_proba(X)[:, 1], p1 if column == 1 else 1 - p1, rtol=1e-6)
        assert m["metrics"]["accuracy"] > 0.9


class Payload:
    """A type outside numpy/scipy/sklearn whose loading would run code (writes a marker file)."""

    marker: Path | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["marker"]).write_text("ran")


def test_skops_file_with_an_untrusted_type_is_refused_unread(owner: dict[str, Any], tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    marker = tmp_path / "ran.txt"
    evil = Payload()
    evil.__dict__["marker"] = str(marker)
    est = LogisticRegression().fit(np.array([[0.0], [1.0]]), ["benign", "malignant"])
    est.payload_ = evil
    sio.dump(est, tmp_path / "evil.skops")
    out = _add(tmp_path / "reg", "evil", tmp_path / "evil.skops", owner["csv"])
    assert out.exit_code == 2, out.output
    assert "refusing evil.skops" in out.output and "Payload" in out.output and "(not loaded)" in out.output
    assert not marker.exists()
    sio.load(tmp_path / "evil.skops", trusted=sio.get_untrusted_types(file=tmp_path / "evil.skops"))
    assert marker.read_text() == "ran"  # the file does run code when its types are trusted: the refusal matters


def test_skops_file_naming_a_function_is_refused(owner: dict[str, Any], tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y = owner["holdout"][owner["features"]].to_numpy(), owner["holdout"][LABEL]
    for func, refused in ((np.sqrt, False), (np.save, True)):  # a ufunc skops trusts; a function it does not
        pipe = make_pipeline(FunctionTransformer(func, validate=False, check_inverse=False),
                             LogisticRegression(max_iter=5000))
        pipe.steps[0][1].fit(X)
        pipe.steps[1][1].fit(np.sqrt(X), y)
        sio.dump(pipe, tmp_path / "f.skops")
        out = _add(tmp_path / "reg", "f", tmp_path / "f.skops", owner["csv"])
        if refused:
            assert out.exit_code == 2 and "trusted list: numpy.save (not loaded)" in out.output, out.output
        else:
            assert out.exit_code == 0, out.output


def test_boosters_that_do_not_predict_probabilities_are_refused(owner: dict[str, Any], tmp_path: Path) -> None:
    import lightgbm as lgb
    import xgboost as xgb

    X, y = owner["holdout"][owner["features"]], (owner["holdout"][LABEL] == POSITIVE).astype(int)
    xgb.XGBClassifier(n_estimators=5, objective="binary:hinge").fit(X, y).save_model(tmp_path / "hinge.json")
    lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(X, y).booster_.save_model(str(tmp_path / "reg.txt"))
    for file, objective in (("hinge.json", "'binary:hinge'"), ("reg.txt", "'regression'")):
        out = _add(tmp_path / "reg", "b", tmp_path / file, owner["csv"])
        assert out.exit_code == 2 and f"objective is {objective}, which does not predict probabilities" in out.output


def test_bad_arguments_exit_2_with_one_line(owner: dict[str, Any], tmp_path: Path) -> None:
    reg, csv, paths = tmp_path / "reg", owner["csv"], owner["paths"]
    swapped = owner["features"][1:2] + owner["features"][:1] + owner["features"][2:]
    short = tmp_path / "short.csv"
    owner["holdout"].drop(columns=["worst_symmetry"]).to_csv(short, index=False)
    cases = {
        "label column 'nope' not found": _cli("models", "add", "m", "--file", str(paths["xgb_ubj"]), "--features-from",
                                              str(csv), "--label", "nope", "--holdout", str(csv), "--registry", str(reg)),
        "feature mismatch at position 0": _cli("models", "add", "m", "--file", str(paths["xgb_ubj"]), "--features",
                                               ",".join(swapped), "--label", LABEL, "--holdout", str(csv),
                                               "--registry", str(reg)),
        "feature mismatch: the model takes 30 features": _cli(
            "models", "add", "m", "--file", str(paths["pipeline"]), "--features", "mean_radius", "--label", LABEL,
            "--holdout", str(csv), "--registry", str(reg)),
        "worst_symmetry not in the holdout's columns": _cli(
            "models", "add", "m", "--file", str(paths["lgbm"]), "--features", ",".join(owner["features"]),
            "--label", LABEL, "--holdout", str(short), "--registry", str(reg)),
        "cannot load lgbm.txt as a xgboost model": _add(reg, "m", paths["lgbm"], csv, "--format", "xgboost"),
        "cannot tell the format": _add(reg, "m", csv, csv),
    }
    for expected, out in cases.items():
        assert out.exit_code == 2 and expected in out.output, (expected, out.output)
        assert len(out.output.strip().splitlines()) == 1
    assert not (reg / "models").exists() or not Registry(reg).names("models")  # nothing registered


def test_build_deployable_version_with_cross_fitted_metrics(owner: dict[str, Any], tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    for name, key in (("xgb", "xgb_ubj"), ("pipe", "pipeline"), ("gbm", "lgbm")):
        assert _add(reg, name, owner["paths"][key], owner["csv"]).exit_code == 0
    assert _add(reg, "xgb", owner["paths"]["xgb_json"], owner["csv"]).exit_code == 0  # xgb@v2
    unknown = _cli("ensemble", "build", "mine", "--members", "xgb@v3,pipe@v1", "--holdout", str(owner["csv"]),
                   "--label", LABEL, "--registry", str(reg))
    assert unknown.exit_code == 2 and "unknown member version xgb@v3; versions: xgb@v1, xgb@v2" in unknown.output
    out = _cli("ensemble", "build", "mine", "--members", "xgb@v2,pipe@v1,gbm", "--holdout", str(owner["csv"]),
               "--label", LABEL, "--positive", POSITIVE, "--strategy", "soft_voting_all", "--folds", "3", "--json",
               "--registry", str(reg))
    assert out.exit_code == 0, out.output
    s = orjson.loads(out.output)
    assert s["ensemble"] == "mine@v1" and s["rows"] == len(owner["holdout"]) and s["folds"] == 3
    assert set(s["members"]) == {"xgb@v2", "pipe@v1", "gbm@v1"}
    # Cross-fitted, not in-sample: the calibrator and conformal threshold saw none of the rows they report on.
    assert 0.0 < s["metrics"]["log_loss"] < 0.3 and s["metrics"]["accuracy"] > 0.9
    assert abs(s["conformal_coverage"] - 0.9) < 0.06
    reg_ = Registry(reg)
    ens, rows = load_with_smoke_rows(reg_, "mine", 1)
    assert smoke_problem(ens, rows) is None and len(rows) == 8 and set(rows[0]) == set(owner["features"])
    # The served path (raw features, no standardisation) gives each member the user's own prediction.
    records = [dict(r) for r in owner["holdout"][owner["features"]].to_dict("records")]
    X = ens.encoder.transform_records(records).X
    np.testing.assert_allclose(X, owner["holdout"][owner["features"]].to_numpy())
    run = ens.pool.proba(X, np.ones(3, dtype=bool))
    est, _ = reg_.load("models", "pipe", 1)
    np.testing.assert_allclose(run.proba[:, ens.pool.names.index("pipe")], est.predict_proba(X))
    one = _cli("ensemble", "build", "mine", "--members", "xgb@v2,pipe@v1,gbm", "--holdout", str(owner["csv"]),
               "--label", LABEL, "--positive", POSITIVE, "--strategy", "bnb_soft", "--max-members", "1", "--folds", "3",
               "--registry", str(reg))
    assert one.exit_code == 0, one.output
    assert len(reg_.manifest("ensembles", "mine", 2)["selected"]) == 1  # the selection honours --max-members
    listed = orjson.loads(_cli("ensemble", "list", "--json", "--registry", str(reg)).output)
    assert listed[0]["ensemble"] == "mine@v1" and listed[0]["built_from"] == "holdout"
    assert listed[0]["cost"]["ms_per_1k"] == pytest.approx(sum(
        reg_.manifest("models", n, v)["cost_ms_per_1k"] for n, v in (("xgb", 2), ("pipe", 1), ("gbm", 1))))
    shown = orjson.loads(_cli("models", "show", "xgb@v2", "--json", "--registry", str(reg)).output)
    assert shown["source"]["format"] == "xgboost" and shown["source"]["file"] == "xgb.json"
    text = _cli("models", "list", "--registry", str(reg)).output
    assert "xgb@v2" in text and "lightgbm" in text
    with pytest.raises(ConfigError, match="feature mismatch"):
        pd.DataFrame({"mean_radius": [1.0, 2.0], LABEL: ["benign", "malignant"]}).to_csv(tmp_path / "n.csv", index=False)
        add_member(reg_, "tiny", owner["paths"]["lgbm"], load_csv(tmp_path / "n.csv", LABEL, POSITIVE), ["mean_radius"])
    with pytest.raises(ConfigError, match="at least 6 rows of every class"):
        build_ensemble(reg_, "mine", ["xgb@v1", "pipe@v1"], load_csv(owner["csv"], LABEL, POSITIVE).subset(
            np.arange(20)), folds=3)


def test_three_classes_text_labels_boosters_and_pipeline(tmp_path: Path) -> None:
    import lightgbm as lgb
    import skops.io as sio
    import xgboost as xgb
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    raw = load_wine(as_frame=True)
    frame = raw.data.rename(columns=lambda c: c.replace("/", "_"))
    features = list(frame.columns)
    names = np.array(["barolo", "grignolino", "barbera"])  # not sorted: the pool's order is the sorted one
    frame["cultivar"] = names[raw.target]
    train, holdout = train_test_split(frame, test_size=0.5, random_state=0, stratify=frame["cultivar"])
    codes = np.searchsorted(np.sort(names), train["cultivar"])  # the owner codes text labels in sorted order
    xgb.XGBClassifier(n_estimators=30, max_depth=2, n_jobs=1).fit(train[features], codes).save_model(tmp_path / "x.ubj")
    lgb.LGBMClassifier(n_estimators=30, num_leaves=4, verbose=-1).fit(train[features], codes).booster_.save_model(
        str(tmp_path / "l.txt"))
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(train[features], train["cultivar"])
    sio.dump(pipe, tmp_path / "p.skops")
    holdout.to_csv(tmp_path / "h.csv", index=False)
    data = load_csv(tmp_path / "h.csv", "cultivar")
    assert data.classes == ["barbera", "barolo", "grignolino"]
    reg = Registry(tmp_path / "reg")
    for n, f in (("x", "x.ubj"), ("l", "l.txt"), ("p", "p.skops")):
        m = add_member(reg, n, tmp_path / f, data, features)
        assert m["metrics"]["accuracy"] > 0.85, (n, m["metrics"])
    est, _ = reg.load("models", "p", 1)
    X = holdout[features].to_numpy()
    np.testing.assert_allclose(est.predict_proba(X), pipe.predict_proba(holdout[features]))  # sorted = pipe's order
    result = build_ensemble(reg, "wine", ["x", "l@v1", "p@v1"], data, folds=3)
    assert result.version == 1 and result.summary["metrics"]["accuracy"] > 0.85
    served = result.summary["served_strategy"]  # auto: the chosen strategy cross-fitted on its own too
    assert served["strategy"] == reg.manifest("ensembles", "wine", 1)["strategy"]
    assert served["metrics"]["accuracy"] > 0.85 and 0.0 < served["mean_set_size"] <= 3
    ens, rows = load_with_smoke_rows(reg, "wine", 1)
    assert smoke_problem(ens, rows) is None and ens.class_names == data.classes


def test_build_refuses_members_that_train_registered(owner: dict[str, Any], tmp_path: Path) -> None:
    from stream_ensemble.core.data import load_bundled
    from stream_ensemble.core.members.families import default_pool
    from stream_ensemble.core.training import train

    reg = Registry(tmp_path / "reg")
    train(load_bundled(), [s for s in default_pool(0) if s.model_id in {"logreg", "naive_bayes"}], reg)
    add_member(reg, "pipe", owner["paths"]["pipeline"], load_csv(owner["csv"], LABEL, POSITIVE), owner["features"])
    with pytest.raises(ConfigError, match="logreg@v1 was trained by `stream-ensemble train`"):
        build_ensemble(reg, "mixed", ["logreg@v1", "pipe@v1"], load_csv(owner["csv"], LABEL, POSITIVE), folds=3)
