"""References for the CNN results: the planted-risk reference and the pixel reference model.

Both are scored exactly like a model run (a frame of ``patient_id, label, split, probability``
per dataset × variant, image level as the paper, patient level as the mean of a patient's
image scores) on the same test images and patients as the CNNs.

* **Planted-risk reference** (synthetic cohorts only): each image's score is the part of the
  planted DM log-odds that this image shows (``truth_rois.csv``: the stage part, the lesion's
  core feature and, for the intra-peritumoural variant, its peritumoural feature). It tells how
  well the signal that is in a dataset's images separates DM on these test patients: a
  reference, not a ceiling (a model could also pick up what the reference leaves out, such as
  the other region, and patients' risk holds an unobserved part).
* **Pixel reference model**: first-order intensity and grey-level co-occurrence texture
  features (scikit-image) of the very images the CNNs see, and a logistic regression fitted on
  the training images only. It tells whether the signal can be recovered from the pixels.
"""
from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from skimage.feature import graycomatrix, graycoprops
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from npc_lib.atomic import atomic_path
from npc_lib.data.cache import ImageStore, open_image_store
from npc_lib.layout import RunLayout, pixel_features_file
from npc_lib.analysis.metrics import MetricError, auc_ci_delong, patient_scores
from npc_lib.data.rois import VARIANT_REGISTRY, Geometry, box_columns, dataset_mask, place
from npc_lib.vocabulary import DATASETS, LITE0, PAPER_BACKBONES, VARIANTS

log = logging.getLogger(__name__)
TRUTH_KEY = ["patient_id", "sop_instance_uid", "region", "x0", "y0", "x1", "y1"]
GLCM_PROPS = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation")
GLCM_LEVELS = 16
REFERENCE_COLUMNS = ["dataset", "variant", "level", "auc", "auc_low", "auc_high", "patients", "images",
                     "dm_patients", "note"]


def _views(store: ImageStore, split: pd.Series, datasets, variants):
    for d in datasets:
        view = store.index.loc[dataset_mask(store.index, d)].copy()
        view["split"] = view["patient_id"].map(split)
        for v in variants:
            yield d, v, view


def planted_image_scores(store: ImageStore, split: pd.Series, cohort_dir: str | Path,
                         datasets=tuple(DATASETS), variants=tuple(VARIANTS)) -> dict | None:
    """Pseudo-runs of the planted-risk reference, or None when the cohort has no ground truth.

    Returns
    -------
    dict mapping (dataset, variant) to a DataFrame with one row per image of that dataset
    (columns ``patient_id, image_id, label, split, probability``); ``probability`` is the logistic
    of the planted log-odds the image shows, so that a patient's score is the mean of their image
    probabilities, the rule the CNNs are scored by (image-level AUCs are unchanged by the logistic).
    """
    path = Path(cohort_dir) / "truth_rois.csv"
    if not path.is_file():
        return None
    truth = pd.read_csv(path, dtype={"patient_id": str, "sop_instance_uid": str})
    truth = truth.drop_duplicates(TRUTH_KEY)
    joined = store.index.merge(truth[[*TRUTH_KEY, "risk_stage", "risk_core", "risk_margin"]], on=TRUTH_KEY,
                               how="left", validate="many_to_one")
    if joined["risk_core"].isna().any():
        miss = joined.loc[joined["risk_core"].isna()].iloc[0]
        log.warning("truth_rois.csv has no row for the ROI of patient %s on %s: no planted reference",
                    miss.patient_id, miss.sop_instance_uid)
        return None
    joined = joined.set_index("image_id")
    out = {}
    for d, v, view in _views(store, split, datasets, variants):
        t = joined.loc[view["image_id"]]
        log_odds = t["risk_stage"] + t["risk_core"] + (t["risk_margin"] if VARIANT_REGISTRY[v].holds_margin else 0.0)
        prob = 1.0 / (1.0 + np.exp(-log_odds.to_numpy(float)))  # a patient's score: mean probability, as for the CNNs
        out[(d, v)] = view[["patient_id", "image_id", "label", "split"]].assign(probability=prob)
    return out


def _valid_mask(h: int, w: int, geometry: Geometry, cache: dict) -> np.ndarray:
    """Where a crop of h × w pixels lands on the model input (the rest is zero padding)."""
    key = (h, w)
    if key not in cache:
        cache[key] = place(np.ones((h, w), np.float32), geometry) >= 0.5
    return cache[key]


def image_features(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """First-order and GLCM texture features of one stored image inside its valid area.

    Parameters
    ----------
    image : uint8 array, shape (size, size)
        One model input image as stored (per-crop normalised, padded, resized).
    mask : bool array, shape (size, size)
        The crop's footprint on the image (``_valid_mask``).

    Returns
    -------
    float array, shape (12 + 2 * len(GLCM_PROPS),)
    """
    v = image[mask].astype(np.float64) / 255.0
    if v.size < 4:
        v = np.resize(v if v.size else np.zeros(1), 4)
    hist = np.histogram(v, bins=16, range=(0, 1))[0] / v.size
    first = [np.log(mask.sum() + 1.0), v.mean(), v.std(), *np.percentile(v, [10, 25, 50, 75, 90]),
             float(stats.skew(v)) if v.std() > 0 else 0.0, float(stats.kurtosis(v)) if v.std() > 0 else 0.0,
             -(hist[hist > 0] * np.log(hist[hist > 0])).sum(), (v < 0.25).mean()]
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] if rows.size else image[:2, :2]
    q = (crop.astype(np.uint16) * GLCM_LEVELS // 256).astype(np.uint8)
    glcm = graycomatrix(q, distances=[1, 2], angles=[0, np.pi / 4, np.pi / 2, 3 * np.pi / 4],
                        levels=GLCM_LEVELS, symmetric=True, normed=True)
    tex = [np.nan_to_num(graycoprops(glcm, p)).mean(axis=1) for p in GLCM_PROPS]  # per distance
    return np.concatenate([np.asarray(first, float), np.concatenate(tex)])


def store_features(store: ImageStore, geometry: Geometry, cache_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """Pixel features of every stored image, per store variant (``intra``, ``peri``): arrays of
    shape (images, features), cached next to the store as ``pixel-features-<fingerprint>.npz``."""
    key = store.manifest.get("pixels_of", store.fingerprint)  # pixels only: a relabelled store shares them
    cache = pixel_features_file(Path(cache_dir), key) if cache_dir else None
    idx = store.index
    if cache is not None and cache.is_file():
        try:  # the zip's CRC-32 of every array is checked on reading: a damaged file never passes
            with np.load(cache) as z:
                cached = {k: z[k] for k in z.files}
            if set(cached) == set(box_columns()) and all(len(v) == len(idx) for v in cached.values()):
                return cached
            problem = "holds other images"
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            problem = f"is damaged ({type(exc).__name__})"
        log.warning("%s %s: recomputing the pixel features", cache, problem)
    masks: dict = {}
    out = {}
    for variant, cols in box_columns().items():
        images = store.images(variant)
        h = (idx[cols[3]] - idx[cols[1]]).to_numpy()
        w = (idx[cols[2]] - idx[cols[0]]).to_numpy()
        out[variant] = np.stack([image_features(np.asarray(images[i]), _valid_mask(int(h[i]), int(w[i]), geometry, masks))
                                 for i in range(len(idx))]) if len(idx) else np.zeros((0, 22))
    if cache is not None:
        with atomic_path(cache, suffix=".npz") as tmp:
            np.savez(tmp, **out)
    return out


def pixel_model(seed: int = 0):
    """The pixel reference model, unfitted: standardised pixel features into an L2-penalised logistic regression."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000, random_state=seed))


def pixel_reference_scores(store: ImageStore, split: pd.Series, geometry: Geometry,
                           cache_dir: str | Path | None = None, datasets=tuple(DATASETS),
                           variants=tuple(VARIANTS), seed: int = 0) -> dict:
    """Pseudo-runs of the pixel reference model: logistic regression on standardised pixel
    features, both fitted on the dataset's training images only, applied to every image.

    Returns
    -------
    dict mapping (dataset, variant) to a DataFrame (``patient_id, image_id, label, split,
    probability``), one row per image of the dataset.
    """
    feats = store_features(store, geometry, cache_dir)
    out = {}
    for d, v, view in _views(store, split, datasets, variants):
        X = feats[v][view["image_id"].to_numpy()]
        y = view["label"].to_numpy()
        train = (view["split"] == "train").to_numpy()
        frame = view[["patient_id", "image_id", "label", "split"]].copy()
        if len(np.unique(y[train])) < 2:
            frame["probability"] = np.nan
        else:
            model = pixel_model(seed)
            model.fit(X[train], y[train])
            frame["probability"] = model.predict_proba(X)[:, 1]
        out[(d, v)] = frame
    return out


def score_references(pseudo_runs: dict) -> pd.DataFrame:
    """AUC with DeLong 95 % CI on the test split at image and patient level, per dataset × variant.

    Returns
    -------
    DataFrame with columns ``REFERENCE_COLUMNS`` (two rows per dataset × variant).
    """
    rows = []
    for (d, v), pred in pseudo_runs.items():
        test = pred[pred["split"] == "test"]
        for level in ("image", "patient"):
            row = {"dataset": d, "variant": v, "level": level, "patients": test["patient_id"].nunique(),
                   "images": len(test), "dm_patients": int(test.groupby("patient_id")["label"].first().sum())
                   if len(test) else 0, "note": ""}
            try:
                frame = test if level == "image" else patient_scores(test)
                ci = auc_ci_delong(frame["label"], frame["probability"],  # images clustered by patient
                                   groups=frame["patient_id"].to_numpy() if level == "image" else None)
                row.update(auc=ci.auc, auc_low=ci.low, auc_high=ci.high)
            except MetricError as exc:
                row.update(auc=np.nan, auc_low=np.nan, auc_high=np.nan, note=str(exc))
            rows.append(row)
    return pd.DataFrame(rows, columns=REFERENCE_COLUMNS)


def study_references(runs_dir: RunLayout | str | Path, cohort_dir: str | Path, split: pd.Series,
                     datasets=tuple(DATASETS), variants=tuple(VARIANTS)) -> dict:
    """Both references for a prepared study (its image store and split).

    Returns
    -------
    dict with ``planted`` and ``pixel`` (pseudo-runs as above; ``planted`` is None without
    ground truth) and their scored tables ``planted_table`` (or None) and ``pixel_table``.
    """
    layout = RunLayout.of(runs_dir)
    store = open_image_store(layout.image_store(layout.read_cohort_ref()["store"]), verify=False)
    geometry = Geometry(**store.manifest["geometry"])
    planted = planted_image_scores(store, split, cohort_dir, datasets, variants)
    pixel = pixel_reference_scores(store, split, geometry, layout.cache, datasets, variants)
    return {"planted": planted, "pixel": pixel,
            "planted_table": score_references(planted) if planted else None,
            "pixel_table": score_references(pixel)}


def reference_summary(metrics: pd.DataFrame, pixel: pd.DataFrame, planted: pd.DataFrame | None = None,
                      negative: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per dataset × variant × level: test patients, the planted-risk reference and the
    pixel reference (AUC and 95 % CI), the mean (and range) AUC of the paper's four backbones,
    EfficientNet-Lite0's AUC beside them (never averaged in) and, where it ran, the
    negative control's mean CNN AUC, all on the same test split of each cohort.

    Parameters
    ----------
    metrics : the per-run table of :func:`npc_lib.analysis.evaluation.evaluate_runs`
    pixel, planted : tables of :func:`score_references`
    negative : the negative-control table (``npc_lib.analysis.negative_control.COLUMNS``)

    Returns
    -------
    DataFrame, one row per dataset × variant × level: ``test_patients, test_dm_patients``,
    ``cnn_mean_auc, cnn_min_auc, cnn_max_auc`` (the paper's four backbones), ``lite0_auc``, ``pixel_auc/low/high``, ``planted_auc/low/high`` (when
    given) and ``null_cnn_auc`` (when given).
    """
    rows = []
    for r in pixel.itertuples():
        col = "auc" if r.level == "image" else "patient_auc"
        cell = metrics[(metrics["dataset"] == r.dataset) & (metrics["variant"] == r.variant)]
        m = cell.loc[cell["backbone"].isin(PAPER_BACKBONES), col]  # the paper's four, as its averages
        lite0 = cell.loc[cell["backbone"] == LITE0, col]
        row = {"dataset": r.dataset, "variant": r.variant, "level": r.level, "test_patients": r.patients,
               "test_dm_patients": r.dm_patients, "cnn_mean_auc": m.mean(), "cnn_min_auc": m.min(),
               "cnn_max_auc": m.max(), "lite0_auc": lite0.iloc[0] if len(lite0) else np.nan,
               "pixel_auc": r.auc, "pixel_low": r.auc_low, "pixel_high": r.auc_high}
        if planted is not None:
            p = planted[(planted["dataset"] == r.dataset) & (planted["variant"] == r.variant)
                        & (planted["level"] == r.level)]
            if len(p):
                row.update(planted_auc=p["auc"].iloc[0], planted_low=p["auc_low"].iloc[0],
                           planted_high=p["auc_high"].iloc[0])
        if negative is not None and len(negative):
            n = negative[(negative["dataset"] == r.dataset) & (negative["variant"] == r.variant)
                         & (negative["backbone"] != "pixel reference")][col]
            row["null_cnn_auc"] = n.mean()
        rows.append(row)
    return pd.DataFrame(rows)
