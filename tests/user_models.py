"""What a model owner does outside the project: plain pandas / scikit-learn / XGBoost / LightGBM code.

Nothing here imports stream_ensemble: the files it writes are what ``models add`` is given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

LABEL = "diagnosis"
POSITIVE = "malignant"


def user_data(holdout_fraction: float = 0.45, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Breast-cancer rows with a text label, split into the owner's training rows and a holdout."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    raw = load_breast_cancer(as_frame=True)
    frame = raw.data.copy()
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    features = list(frame.columns)
    frame[LABEL] = np.where(raw.target == 0, "malignant", "benign")
    train, holdout = train_test_split(frame, test_size=holdout_fraction, random_state=seed, stratify=frame[LABEL])
    return train, holdout, features


def train_user_models(out: Path, train: pd.DataFrame, features: list[str]) -> dict[str, Path]:
    """Fit an XGBoost classifier, a scikit-learn pipeline and a LightGBM model; save them natively."""
    import lightgbm as lgb
    import skops.io as sio
    import xgboost as xgb
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    out.mkdir(parents=True, exist_ok=True)
    X, y = train[features], train[LABEL]
    y01 = (y == POSITIVE).astype(int)
    paths = {"xgb_ubj": out / "xgb.ubj", "xgb_json": out / "xgb.json", "pipeline": out / "pipeline.skops",
             "lgbm": out / "lgbm.txt"}
    booster = xgb.XGBClassifier(n_estimators=60, max_depth=3, learning_rate=0.1, n_jobs=1).fit(X, y01)
    booster.save_model(paths["xgb_ubj"])
    booster.save_model(paths["xgb_json"])
    pipe = Pipeline([("scale", StandardScaler()), ("logreg", LogisticRegression(C=0.3, max_iter=2000))]).fit(X, y)
    sio.dump(pipe, paths["pipeline"])
    gbm = lgb.LGBMClassifier(n_estimators=60, num_leaves=8, verbose=-1, n_jobs=1).fit(X, y01)
    gbm.booster_.save_model(str(paths["lgbm"]))
    return paths
