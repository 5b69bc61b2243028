"""The synthetic cohort generator (the embedded default), with known ground truth.

``generate_cohort`` writes a cohort directory that follows the data contract (``clinical.csv``,
``rois.csv``, ``dicom/<patient>/*.dcm``, ``masks/<patient>.npz``) plus the ground truth, which is
for evaluation only and never read for training: ``truth.csv`` (per patient: latent features
and planted risk), ``truth_rois.csv`` (per rectangle of ``rois.csv``, same rows: what that
image shows) and ``generation_report.json`` (targets met, including where the planted
peritumoural pixels lie relative to the drawn rectangles).
"""
from __future__ import annotations

import datetime as dt
import json
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom

from npc_lib.config import Profile
from npc_lib import PAPER_DOI, __version__
from npc_lib.atomic import atomic_dir, write_csv, write_json
from npc_lib.children import spawn_pool
from npc_lib.errors import CohortError, NpcError
from npc_lib.layout import RunLayout
from npc_lib.data.npz import save_npz
from npc_lib.progress import progress_bar
from npc_lib.synth.clinical import (PAPER_N_COUNTS, PAPER_PATIENTS, PAPER_T_COUNTS, RISK_WEIGHTS, N_WEIGHTS, T_WEIGHTS,
                                    draw_cohort, feature_design)
from npc_lib.synth.centres import centre
from npc_lib.synth.dicom_writer import synthetic_identifiers, write_series
from npc_lib.data.rois import grow_pixels
from npc_lib.synth.audit import add_counts, rim_counts, shares
from npc_lib.synth.phantom import LABELS, PERITUMOUR_MM, PatientAnatomy, plan_lesions, render

FEATURES = ("npc_heterogeneity", "npc_infiltration", "node_necrosis", "node_ene")
ROI_COLUMNS = ["patient_id", "sop_instance_uid", "region", "x0", "y0", "x1", "y1"]
ROI_TRUTH_COLUMNS = [*ROI_COLUMNS, "lesion", "core_feature", "margin_feature", "rim_pixels"]


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a synthetic cohort (same config → same bytes)."""

    patients: int = PAPER_PATIENTS
    matrix: int = 256
    slices: int = 16
    scenario: str = "paper"
    seed: int = 42
    fov_mm: float = 230.0
    slice_mm: float = 5.0
    jitter_mm: float = 2.5
    centre: str = "A"  # the scanner, protocol and case mix (npc_lib.synth.centres); the biology is the same

    @classmethod
    def for_centre(cls, name: str, **settings) -> "SynthConfig":
        """A configuration of centre ``name``, its field of view and slice thickness taken from the centre."""
        c = centre(name)
        return cls(**{"fov_mm": c.fov_mm, "slice_mm": c.slice_mm, **settings, "centre": name})

    def validate(self) -> None:
        centre(self.centre)  # an unknown centre is a clear error
        if self.matrix < 32:
            raise NpcError(f"--matrix must be at least 32 pixels, got {self.matrix}")
        if self.slices < 4:
            raise NpcError(f"--slices must be at least 4 (nasopharynx + neck), got {self.slices}")
        if self.patients < 10:
            raise NpcError(f"--patients must be at least 10, got {self.patients}")


# bumped when the same config renders different images or reports more (2: strands kept out of the boxes;
# 3: the report records the feature design and the T/N margins it drew from; 4: time to DM with a timing
# signal of its own, late events and censoring of DM patients, dm_event; centres and the measured shifts;
# 5: censoring from the study calendar (staggered entry, one end of study), independent of the outcome; the binary
# DM label is the event observed within follow-up, calibrated to the paper's DM share)
GENERATOR_VERSION = 5


def _render_patient(cfg: SynthConfig, index: int, row: dict, strands: bool = True):
    """One patient's slices from its own random stream: (rng after rendering, anatomy, pixels,
    labels, annotations)."""
    rng = np.random.default_rng([cfg.seed, 1, index])
    feats = {k: float(row[k]) for k in FEATURES}
    lesions = plan_lesions(rng, row["t_stage"], row["n_stage"], feats, cfg.slices, cfg.slice_mm)
    c = centre(cfg.centre)
    anatomy = PatientAnatomy.draw(rng, c)
    pixels, labels, notes = render(rng, anatomy, lesions, cfg.matrix, cfg.slices, cfg.fov_mm,
                                   cfg.slice_mm, cfg.jitter_mm, strands=strands, contrast=c.contrast)
    return rng, anatomy, pixels, labels, notes


def rim_intensity_leak(cfg: SynthConfig, records: list[dict], rim_patients: list[int], n: int = 20) -> dict:
    """What the peritumoural strands change inside the drawn rectangles.

    The first ``n`` rim-positive patients (``rim_patients``: indices into ``records``) are rendered
    twice from the same random stream, strands on and off; inside the union of each slice's drawn
    rectangles the absolute difference is measured in units of the patient's noise SD (its mean,
    and the share of pixels differing by more than 0.5 SD), and, as a check that strands were
    there, the mean difference in the ring just outside the rectangles."""
    diffs, ring = [], []
    for i in rim_patients[:n]:
        _, anatomy, on, _, notes = _render_patient(cfg, i, records[i], strands=True)
        _, _, off, _, _ = _render_patient(cfg, i, records[i], strands=False)
        sd = anatomy.noise * anatomy.intensity_scale
        delta = np.abs(on.astype(np.float64) - off.astype(np.float64)) / sd
        inside = np.zeros(on.shape, bool)
        for a in notes:
            x0, y0, x1, y1 = a.box
            inside[a.slice, y0:y1, x0:x1] = True
        near = np.zeros(on.shape, bool)
        for a in notes:
            x0, y0, x1, y1 = a.box
            near[a.slice, max(0, y0 - 2):y1 + 2, max(0, x0 - 2):x1 + 2] = True
        diffs.append(delta[inside])
        ring.append(delta[near & ~inside])
    d = np.concatenate(diffs) if diffs else np.zeros(0)
    r = np.concatenate(ring) if ring else np.zeros(0)
    return {"patients": len(diffs), "box_pixels": int(d.size),
            "mean_abs_difference_sd": round(float(d.mean()), 6) if d.size else None,
            "share_over_half_sd": round(float((d > 0.5).mean()), 6) if d.size else None,
            "max_abs_difference_sd": round(float(d.max()), 4) if d.size else None,
            "ring_outside_mean_abs_difference_sd": round(float(r.mean()), 4) if r.size else None,
            "method": "rim-positive patients rendered with strands on and off from the same random stream; "
                      "differences inside the drawn rectangles in noise-SD units"}


def _make_patient(args):
    """Render and write one patient; returns its ROI truth rows, identifiers and rim counts.
    Runs in a worker process."""
    cfg, index, row, root = args
    cfg = SynthConfig(**cfg)
    px = cfg.fov_mm / cfg.matrix
    rng, anatomy, pixels, labels, notes = _render_patient(cfg, index, row)
    study_date = dt.date(2012, 2, 1) + dt.timedelta(days=int(rng.integers(0, 6 * 365)))
    pid = row["patient_id"]
    ident = synthetic_identifiers(rng, pid, int(row["age"]), study_date)
    sops = write_series(Path(root) / "dicom" / pid, pixels, seed=cfg.seed, patient_id=pid,
                        sex=row["sex"], age=int(row["age"]), identifiers=ident,
                        study_date=study_date, pixel_mm=px, slice_mm=cfg.slice_mm)
    save_npz(Path(root) / "masks" / f"{pid}.npz", labels=labels,
             sop_instance_uids=np.array(sops), legend=np.array(json.dumps(LABELS)))
    rows = [(pid, sops[a.slice], a.region, *a.box, a.lesion, a.core_feature, a.margin_feature, a.rim_pixels)
            for a in notes]
    drawn = pd.DataFrame([(a.slice, a.region, *a.box) for a in notes],
                         columns=["slice_index", "region", "x0", "y0", "x1", "y1"])
    corner = max(2, cfg.matrix // 16)  # air in every corner of the field of view: the noise shows there
    air = np.concatenate([pixels[:, :corner, :corner], pixels[:, :corner, -corner:], pixels[:, -corner:, :corner],
                          pixels[:, -corner:, -corner:]], axis=None).astype(np.float64)
    stats = {"mean_stored": float(pixels.mean()), "air_sd": float(air.std())}
    return rows, ident, rim_counts(labels, drawn, grow_pixels(PERITUMOUR_MM, px)), stats


def _planted_roi_risk(roi_truth: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Add what each rectangle shows of the planted risk (log-odds contributions): its stage
    part (T for the primary, N for nodes), its core feature and its peritumoural feature."""
    t = truth.set_index("patient_id")
    npc = roi_truth["region"] == "npc"
    stage = np.where(npc, roi_truth["patient_id"].map(t["risk_t"]), roi_truth["patient_id"].map(t["risk_n"]))
    w_core = np.where(npc, RISK_WEIGHTS["npc_heterogeneity"], RISK_WEIGHTS["node_necrosis"])
    w_margin = np.where(npc, RISK_WEIGHTS["npc_infiltration"], RISK_WEIGHTS["node_ene"])
    return roi_truth.assign(risk_stage=stage, risk_core=w_core * roi_truth["core_feature"],
                            risk_margin=w_margin * roi_truth["margin_feature"])


def generate_cohort(out: str | Path, config: SynthConfig = SynthConfig(), jobs: int = 1,
                    overwrite: bool = False, progress: bool = True) -> dict:
    """Write a synthetic cohort to ``out``; returns the generation report.

    Everything is written to a temporary sibling folder that is renamed onto ``out`` only
    when complete, so a failure or interruption never leaves a half-written cohort.
    """
    config.validate()
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise NpcError(f"{out} already exists and is not empty", hint="pass --overwrite to replace it")
    draw = draw_cohort(config.patients, config.seed, config.scenario, centre=centre(config.centre))
    with atomic_dir(out) as tmp:
        (tmp / "dicom").mkdir()
        (tmp / "masks").mkdir()
        merged = draw.clinical.merge(draw.truth[["patient_id", *FEATURES]], on="patient_id")
        tasks = [(asdict(config), i, r, str(tmp)) for i, r in enumerate(merged.to_dict("records"))]
        bar = dict(total=len(tasks), desc="synthetic patients", unit="patient", enabled=progress)
        if jobs > 1:
            with spawn_pool(jobs) as pool:
                results = list(progress_bar(pool.imap(_make_patient, tasks, chunksize=2), **bar))
        else:
            results = [_make_patient(t) for t in progress_bar(tasks, **bar)]
        roi_truth = _planted_roi_risk(pd.DataFrame([r for rows, *_ in results for r in rows],
                                                   columns=ROI_TRUTH_COLUMNS), draw.truth)
        rois = roi_truth[ROI_COLUMNS]
        rim: dict = {}
        for _, _, counts, _ in results:
            add_counts(rim, counts)
        rim_positive = [i for i, (rows, *_) in enumerate(results) if any(r[-1] > 0 for r in rows)]
        leak = rim_intensity_leak(config, [t[2] for t in tasks], rim_positive)
        write_csv(tmp / "clinical.csv", draw.clinical)
        write_csv(tmp / "rois.csv", rois)
        write_csv(tmp / "truth.csv", draw.truth, float_format="%.6g")
        write_csv(tmp / "truth_rois.csv", roi_truth, float_format="%.6g")
        report = {**_report(config, draw, rois, shares(rim)), "rim_intensity_leak": leak,
                  "measured": _measured(config, draw, [stats for *_, stats in results])}
        write_json(tmp / "generation_report.json", report)
    return report


def _measured(config: SynthConfig, draw, stats: list[dict]) -> dict:
    """What the written cohort shows of its centre: stored intensities, noise in air, spacing, case mix."""
    c = draw.clinical
    return {"centre": config.centre, "pixel_spacing_mm": round(config.fov_mm / config.matrix, 4),
            "slice_mm": config.slice_mm, "matrix": config.matrix,
            "mean_stored_intensity": round(float(np.mean([s["mean_stored"] for s in stats])), 2),
            "air_sd_stored": round(float(np.mean([s["air_sd"] for s in stats])), 2),
            "dm_rate": round(float(c["dm"].mean()), 4),
            "stage_shares": {str(k): round(float(v), 4) for k, v in
                             c["overall_stage"].value_counts(normalize=True).sort_index().items()},
            "t_shares": {str(k): round(float(v), 4) for k, v in c["t_stage"].value_counts(normalize=True).sort_index().items()},
            "n_shares": {str(k): round(float(v), 4) for k, v in c["n_stage"].value_counts(normalize=True).sort_index().items()}}


def _report(config: SynthConfig, draw, rois: pd.DataFrame, rim: dict) -> dict:
    c = draw.clinical
    return {
        "purpose": "synthetic cohort with planted DM signal; truth.csv is for evaluation only",
        "generator": GENERATOR_VERSION,
        "source_study_doi": PAPER_DOI,
        "config": asdict(config),
        "centre": centre(config.centre).as_dict(),
        "pixel_spacing_mm": config.fov_mm / config.matrix,
        "peritumour_feature_depth_mm": PERITUMOUR_MM,
        "patients": int(len(c)),
        "dm": int(c["dm"].sum()),
        "prevalence": round(float(c["dm"].mean()), 4),
        "counts": {col: {str(k): int(v) for k, v in c[col].value_counts().sort_index().items()}
                   for col in ("t_stage", "n_stage", "overall_stage", "sex", "treatment")},
        "rois": {str(k): int(v) for k, v in rois["region"].value_counts().sort_index().items()},
        "peritumoural_rim": {
            "definition": "planted rim pixels (mask label 2 for npc, 5 for cmln rectangles) inside the "
                          "rectangles as drawn and inside them grown by peritumoural_feature_depth_mm",
            **rim},
        "planted_risk_auc": draw.planted_auc,
        "time_model": draw.time_model,
        "risk_model": {"t_weights": T_WEIGHTS, "n_weights": N_WEIGHTS, "feature_weights": RISK_WEIGHTS,
                       "features": feature_design(),
                       "t_n_margins": {"source": "Hua et al. 2023, Table 1 (train + test, DM + no DM)",
                                       "t_counts": PAPER_T_COUNTS.tolist(), "n_counts": PAPER_N_COUNTS.tolist()},
                       "form": "DM ever = top of (linear risk + standard logistic noise) until round(prevalence*N) of them fall "
                "within follow-up; DM = DM ever and observed within follow-up"
                               if config.scenario == "paper" else "DM = random subset (null scenario)"},
        "mask_labels": LABELS,
        "versions": {"npc_lib": __version__, "numpy": np.__version__, "pydicom": pydicom.__version__,
                     "python": platform.python_version()},
    }


def ensure_cohort(profile: Profile, cohort_dir: str | Path | None, runs_dir: RunLayout | str | Path,
                  progress: bool = True, jobs: int = 2, fresh: bool = False) -> Path:
    """The cohort a study uses: ``cohort_dir`` when given (a user's own cohort), else the
    profile's synthetic cohort under ``runs_dir/cohort``, generated once and reused while its
    generation report matches the profile's ``cohort`` settings (``fresh``: generated anew)."""
    if cohort_dir:
        path = Path(cohort_dir)
        if not path.is_dir():
            raise CohortError(f"cohort folder {path} does not exist")
        return path
    c = profile.cohort
    cfg = SynthConfig(patients=c.patients, matrix=c.matrix, slices=c.slices, scenario=c.scenario, seed=c.seed)
    return ensure_synthetic(RunLayout.of(runs_dir).synthetic_cohort, cfg, progress=progress, jobs=jobs, fresh=fresh)


def ensure_synthetic(path: str | Path, cfg: SynthConfig, progress: bool = True, jobs: int = 2,
                     fresh: bool = False) -> Path:
    """The synthetic cohort of ``cfg`` at ``path``: reused while its generation report records the same
    generator and settings (size, matrix, slices, scenario, seed, centre), else (or when ``fresh``: the
    generator's code changed) generated afresh."""
    path = Path(path)
    report = path / "generation_report.json"
    if report.is_file() and not fresh:
        written = json.loads(report.read_text())
        recorded = written.get("config", {})
        wanted = {"patients": cfg.patients, "matrix": cfg.matrix, "slices": cfg.slices, "scenario": cfg.scenario,
                  "seed": cfg.seed, "centre": cfg.centre}
        if written.get("generator") == GENERATOR_VERSION and \
                all(recorded.get(k, "A" if k == "centre" else None) == v for k, v in wanted.items()):
            return path
    generate_cohort(path, cfg, jobs=jobs, overwrite=True, progress=progress)
    return path
