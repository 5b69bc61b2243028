"""Hybrid clinical + image model (the paper's stated future work).

A logistic regression on T, N, overall stage, age and the patient-level image score. The image
score of a *training* patient is out-of-fold: the run's head is refitted on k patient folds of
the training split and scores only the held-out fold, so the regression never sees an
in-sample image score. Test patients get the score of the run's final model (fitted on all
training patients). Scaling and the regression are fitted on the training split only.
Needs ``head`` mode (cached features); a finetune run would need k backbone retrainings.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from npc_lib.analysis.metrics import MetricError, auc_ci_delong, delong_test, patient_scores
from npc_lib.atomic import atomic_path, write_json
from npc_lib.data.cache import open_image_store
from npc_lib.data.split import patient_folds
from npc_lib.data.staging import STAGE_LEVELS, ordinal
from npc_lib.errors import NpcError
from npc_lib.layout import ModelRun, RunLayout
from npc_lib.learn.features import extract_features
from npc_lib.learn.headfit import apply_standardiser, standardise
from npc_lib.learn.stacked_heads import HeadTask, fit_heads
from npc_lib.learn.train import dataset_view, profile_of_run

CLINICAL_FEATURES = ["t", "n", "stage", "age"]


def oof_image_scores(runs_dir: RunLayout | str | Path, run_dir: str | Path, folds: int = 5,
                     with_test: bool = False) -> pd.DataFrame:
    """Out-of-fold probabilities of a head-mode run's training images.

    The run's head is refitted on ``folds`` patient folds of the training split (stratified by DM,
    seeded by the run's seed; each fold's standardisation fitted on its own training rows) and
    each image is scored by the head that did not see its patient.

    Parameters
    ----------
    runs_dir : the runs folder (split, image store, feature cache)
    run_dir : one head-mode run under ``runs_dir/models``
    folds : patient folds of the training split

    Returns
    -------
    DataFrame, one row per training image: ``patient_id, image_id, label, split, probability``. With
    ``with_test``, also one row per test image (``split`` "test") scored by the mean of the fold heads: scores
    on the out-of-fold scale, for whatever is fitted on out-of-fold scores and then applied to test patients.
    """
    scores = oof_image_scores_many(runs_dir, [run_dir], folds)[0]
    return scores if with_test else scores[scores["split"] == "train"].reset_index(drop=True)


def oof_image_scores_many(runs_dir: RunLayout | str | Path, run_dirs: list, folds: int = 5) -> list[pd.DataFrame]:
    """:func:`oof_image_scores` of several head-mode runs of one backbone, their folds' heads fitted together
    (:func:`~npc_lib.learn.stacked_heads.fit_heads`: each head as if fitted alone)."""
    layout = RunLayout.of(runs_dir)
    split = layout.read_split()
    stores, feature_cache, plans, tasks = {}, {}, [], []
    for run_dir in run_dirs:
        run = ModelRun(Path(run_dir))
        meta = run.read_meta()
        if meta.get("mode") != "head":
            raise NpcError(f"{run.root.name}: out-of-fold image scores need head mode (cached features); "
                           f"this run is {meta.get('mode')}")
        cfg, tr = meta["config"], meta["config"]["train"]
        fp = meta["store_fingerprint"]
        if fp not in stores:
            stores[fp] = open_image_store(layout.image_store(fp), verify=False)
        key = (fp, cfg["backbone"], meta.get("features"))
        if key not in feature_cache:
            feature_cache[key] = extract_features(stores[fp], cfg["backbone"], profile_of_run(meta).replaced(
                {"variants": list(dict.fromkeys([*meta_variants(run_dirs), cfg["variant"]]))}), layout.cache)
        values = feature_cache[key][cfg["variant"]].values
        view = dataset_view(stores[fp], cfg["dataset"], split)
        train = view[view["split"] == "train"]
        patients = train.groupby("patient_id")["label"].first()
        if patients.value_counts().min() < folds:
            raise NpcError(f"{run.root.name}: fewer than {folds} training patients in a class; lower the folds")
        fold_of = patient_folds(pd.DataFrame({"patient_id": patients.index, "dm": patients.to_numpy()}), k=folds,
                                seed=int(tr["seed"]))
        X = np.asarray(values[train["image_id"].to_numpy()], np.float32)
        y = train["label"].to_numpy(np.float32)
        test = view[view["split"] == "test"]
        X_test = np.asarray(values[test["image_id"].to_numpy()], np.float32)
        helds = [(train["patient_id"].map(fold_of) == k).to_numpy() for k in range(folds)]
        held_out, tested, fold_tasks = [], [], []
        for k, held in enumerate(helds):  # each fold scaled on its own training rows
            scaled, mean, sd = standardise(X, ~held)
            fit_rows = scaled[~held]
            held_out.append(scaled[held].astype(np.float32))
            tested.append((mean, sd))  # the test rows are scaled when scored (one copy of them is kept)
            fold_tasks.append(HeadTask(fit_rows.astype(np.float32), y[~held], int(tr["seed"]) + k))
        tasks.append(fold_tasks)
        plans.append((train, helds, held_out, tr, test, (X_test, tested)))
    settings = {(int(p[3]["epochs"]), int(p[3]["batch_size"]), float(p[3]["learning_rate"]), float(p[3]["dropout"]),
                 float(p[3]["l2"])) for p in plans}
    fits_by_setting = {}
    for setting in settings:  # one stacked fit per training setting (one, in a study)
        which = [i for i, p in enumerate(plans) if (int(p[3]["epochs"]), int(p[3]["batch_size"]),
                 float(p[3]["learning_rate"]), float(p[3]["dropout"]), float(p[3]["l2"])) == setting]
        fits = fit_heads([t for i in which for t in tasks[i]], epochs=setting[0], batch_size=setting[1],
                         learning_rate=setting[2], dropout=setting[3], l2=setting[4])
        for n, i in enumerate(which):
            fits_by_setting[i] = fits[n * folds:(n + 1) * folds]
    out = []
    for i, (train, helds, held_out, _, test, (X_test, scalers)) in enumerate(plans):
        oof = pd.Series(np.nan, index=train.index)
        for held, Xh, fit in zip(helds, held_out, fits_by_setting[i]):
            oof[train.index[held]] = fit.probabilities(Xh)
        fold_mean = np.mean([fit.probabilities(apply_standardiser(X_test, *scaler).astype(np.float32))
                             for scaler, fit in zip(scalers, fits_by_setting[i])], axis=0)
        cols = ["patient_id", "image_id", "label", "split"]
        out.append(pd.concat([train[cols].assign(probability=oof.to_numpy()),
                              test[cols].assign(probability=np.asarray(fold_mean, float).reshape(-1))],
                             ignore_index=True))
    return out


def meta_variants(run_dirs: list) -> list[str]:
    """The variants of some runs (their features are read together)."""
    return list(dict.fromkeys(ModelRun(Path(r)).read_meta()["config"]["variant"] for r in run_dirs))


def oof_key(run: ModelRun, folds: int) -> dict:
    """What a run's cached out-of-fold scores were computed for."""
    meta = run.read_meta()
    return {"config_hash": meta.get("config_hash"), "store": meta.get("store_fingerprint"), "folds": folds,
            "level": "image", "test": "mean of the fold heads"}


OOF_GROUP = 4  # runs whose folds are fitted together (memory: each keeps its folds' training features)


def write_oof_scores(runs_dir: RunLayout | str | Path, run_dirs: list, folds: int = 5) -> list[Path]:
    """Compute (anew) and keep the out-of-fold scores of several runs of one backbone, ``OOF_GROUP`` runs at a
    time; returns the files."""
    written = []
    groups = [run_dirs[i:i + OOF_GROUP] for i in range(0, len(run_dirs), OOF_GROUP)]
    pairs = [(r, sc) for g in groups for r, sc in zip(g, oof_image_scores_many(runs_dir, g, folds))]
    for run_dir, scores in pairs:
        run = ModelRun(Path(run_dir))
        with atomic_path(run.oof_scores, suffix=".parquet") as tmp:
            scores.to_parquet(tmp, index=False)
        write_json(run.oof_stamp, oof_key(run, folds))
        written += [run.oof_scores, run.oof_stamp]
    return written


def cached_oof_images(runs_dir: RunLayout | str | Path, run_dir: str | Path, folds: int = 5,
                      with_test: bool = False) -> pd.DataFrame:
    """:func:`oof_image_scores` (``with_test`` as there), kept in the run folder (``ModelRun.oof_scores``) and
    reused while the run (its ``config_hash``), its image store and the number of folds are unchanged."""
    run = ModelRun(Path(run_dir))
    if not (run.oof_scores.is_file() and run.oof_stamp.is_file()
            and json.loads(run.oof_stamp.read_text()) == oof_key(run, folds)):
        write_oof_scores(runs_dir, [run.root], folds)
    scores = pd.read_parquet(run.oof_scores)
    return scores if with_test else scores[scores["split"] == "train"].reset_index(drop=True)


def training_oof(runs_dir: RunLayout | str | Path, metas: list[dict], folds: int = 5,
                 with_test: bool = False) -> tuple[dict, dict]:
    """Cached out-of-fold training image scores of every run that has them.

    Returns
    -------
    (scores, reasons): (dataset, variant, backbone) -> :func:`cached_oof_images` frame (``with_test`` as there)
    for the runs that have out-of-fold scores, and -> the reason for those that do not (e.g. finetune runs).
    """
    layout = RunLayout.of(runs_dir)
    scores, reasons = {}, {}
    for meta in metas:
        cfg = meta["config"]
        key = (cfg["dataset"], cfg["variant"], cfg["backbone"])
        try:
            scores[key] = cached_oof_images(layout.root, layout.model(*key).root, folds, with_test)
        except NpcError as exc:
            reasons[key] = str(exc)
    return scores, reasons


def _patient_table(oof_images: pd.DataFrame, run: ModelRun) -> pd.DataFrame:
    train_scores = patient_scores(oof_images).assign(split="train")
    pred = pd.read_parquet(run.predictions)
    test_scores = patient_scores(pred[pred["split"] == "test"]).assign(split="test")
    return pd.concat([train_scores, test_scores], ignore_index=True).rename(columns={"probability": "image_score"})


def oof_patient_scores(runs_dir: RunLayout | str | Path, run_dir: str | Path, folds: int = 5) -> pd.DataFrame:
    """Patient image scores: out-of-fold for training patients (:func:`oof_image_scores`), the
    final model's for test patients.

    Returns
    -------
    DataFrame, one row per patient: ``patient_id, label, image_score, split``.
    """
    return _patient_table(oof_image_scores(runs_dir, run_dir, folds), ModelRun(Path(run_dir)))


def cached_oof_scores(runs_dir: RunLayout | str | Path, run_dir: str | Path, folds: int = 5) -> pd.DataFrame:
    """:func:`oof_patient_scores` from the cached out-of-fold image scores (:func:`cached_oof_images`)."""
    return _patient_table(cached_oof_images(runs_dir, run_dir, folds), ModelRun(Path(run_dir)))


def train_oof_auc(scores: pd.DataFrame) -> float:
    """AUC of the out-of-fold image scores on the training patients (NaN if undefined)."""
    train = scores[scores["split"] == "train"]
    try:
        return auc_ci_delong(train["label"], train["image_score"]).auc
    except MetricError:
        return float("nan")


def clinical_features(clinical: pd.DataFrame) -> pd.DataFrame:
    """T (1–4), N (0–3), overall stage (1–4) and age as numbers, indexed by patient."""
    c = clinical.set_index("patient_id")
    return pd.DataFrame({"t": c["t_stage"].str[1].astype(int), "n": c["n_stage"].str[1].astype(int),
                         "stage": c["overall_stage"].map(lambda s: ordinal(s, STAGE_LEVELS)),
                         "age": c["age"].astype(float)}, index=c.index)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def fit_hybrid(clinical: pd.DataFrame, scores: pd.DataFrame, seed: int = 0) -> dict:
    """Fit clinical-only and hybrid logistic regressions on train, score test; compare by DeLong.

    ``scores``: ``patient_id, split, label, image_score`` (from :func:`oof_patient_scores`).
    Returns ``{"table": metrics per model, "comparisons": DeLong rows, "test": test scores,
    "coefficients": hybrid coefficients on the standardised scale}``.
    """
    data = scores.merge(clinical_features(clinical), left_on="patient_id", right_index=True, how="left")
    if data[CLINICAL_FEATURES].isna().any().any():
        pid = data.loc[data[CLINICAL_FEATURES].isna().any(axis=1), "patient_id"].iloc[0]
        raise NpcError(f"hybrid model: patient {pid} has no clinical row")
    data["image_logit"] = _logit(data["image_score"])
    train, test = data[data["split"] == "train"], data[data["split"] == "test"]
    if train["label"].nunique() < 2:
        raise NpcError("hybrid model: the training patients hold only one class")
    test = test.copy()
    models = {}
    for name, cols in (("clinical", CLINICAL_FEATURES), ("hybrid", CLINICAL_FEATURES + ["image_logit"])):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, random_state=seed))
        model.fit(train[cols], train["label"])
        test[name] = model.predict_proba(test[cols])[:, 1]
        models[name] = (model, cols)
    test["image"] = test["image_score"]
    rows = []
    for name in ("clinical", "image", "hybrid"):
        row = {"model": name, "patients": len(test), "dm": int(test["label"].sum())}
        try:
            ci = auc_ci_delong(test["label"], test[name])
            row.update(auc=ci.auc, auc_low=ci.low, auc_high=ci.high, note="")
        except MetricError as exc:
            row.update(auc=np.nan, auc_low=np.nan, auc_high=np.nan, note=str(exc))
        rows.append(row)
    comparisons = []
    for other in ("clinical", "image"):
        row = {"comparison": f"hybrid vs {other}"}
        try:
            t = delong_test(test["label"], test["hybrid"], test[other])
            row.update(delta_auc=t.auc1 - t.auc2, z=t.z, p=t.p, note="")
        except MetricError as exc:
            row.update(delta_auc=np.nan, z=np.nan, p=np.nan, note=str(exc))
        comparisons.append(row)
    model, cols = models["hybrid"]
    coef = dict(zip(cols, model[-1].coef_.ravel().round(4).tolist()))
    return {"table": pd.DataFrame(rows), "comparisons": pd.DataFrame(comparisons),
            "test": test[["patient_id", "label", "clinical", "image", "hybrid"]].reset_index(drop=True),
            "coefficients": coef, "train_oof_image_auc": train_oof_auc(train)}
