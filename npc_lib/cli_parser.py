"""The ``npc-study`` argument parser: every command, its options and one example each."""
from __future__ import annotations

import argparse
from pathlib import Path

from npc_lib import __version__
from npc_lib.vocabulary import CENTRE_NAMES, INTRA_PERITUMOUR, variant_names

EXAMPLES = {
    "synth": "npc-study synth runs/cohort --patients 441 --matrix 256 --scenario paper --seed 42\n"
             "  npc-study synth runs/centre_b --centre B --patients 200 --matrix 288 --seed 4242",
    "validate": "npc-study validate runs/cohort            # exits non-zero on the first problem\n"
                "  npc-study validate runs/cohort --exclude-invalid --json",
    "table1": "npc-study table1 runs/cohort/clinical.csv --out runs/table1.csv",
    "tnm": "npc-study tnm runs/cohort/clinical.csv --json",
    "datasets": "npc-study datasets runs/demo/cohort --profile demo",
    "evaluate": "npc-study evaluate runs/demo\n"
                "  npc-study evaluate --run runs/demo --external-cohort runs/centre_b   # another site's folder",
    "run": "npc-study run --profile demo                 # synthetic cohort -> every model -> book in _build/html\n"
           "  npc-study run --profile demo --cohort /data/my_cohort --runs runs/mine --jobs 2",
    "train": "npc-study train runs/demo/cohort --profile demo --test-fraction 0.25  # the profile's whole grid\n"
             "  npc-study train runs/demo/cohort --profile demo --dataset CMLN --variant intra-peritumour "
             "--backbone xception",
    "rois-from-masks": "npc-study rois-from-masks /data/my_cohort --masks /data/slicer_labels --format nifti "
                       "--label npc=1,2 --label cmln=3,4,5 --out /data/my_cohort/rois.csv",
    "weights": "npc-study weights check --backbone efficientnet-lite0\n"
               "  npc-study weights check --backbone resnet50 --weights /media/usb/resnet50_weights.h5 --image cat.jpg",
}


TEST_FRACTION = dict(type=float, metavar="F", help="share of patients in the test split, 0 < F < 1 (overrides the "
                     "profile's split.test_fraction; ignored where clinical.csv fixes the split)")


def parser() -> argparse.ArgumentParser:
    """The parser of every ``npc-study`` command."""
    p = argparse.ArgumentParser(prog="npc-study", description="NPC distant-metastasis study companion "
                                "(Hua et al. 2023, DOI 10.2174/1386207325666220919091210).")
    p.add_argument("--version", action="version", version=f"npc-study {__version__}")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True)

    def cmd(name, help_):
        return sub.add_parser(name, help=help_, description=help_, epilog=f"example:\n  {EXAMPLES[name]}",
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    s = cmd("synth", "generate a synthetic DICOM cohort with known ground truth")
    s.add_argument("out", type=Path, help="cohort directory to create")
    s.add_argument("--patients", type=int, default=441)
    s.add_argument("--matrix", type=int, default=256, help="image matrix (pixels per side)")
    s.add_argument("--slices", type=int, default=16)
    s.add_argument("--scenario", choices=["paper", "null"], default="paper")
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--centre", choices=CENTRE_NAMES, default="A",
                   help="the centre's scanner, protocol and case mix (same planted biology); B: another "
                        "vendor, thinner slices, a smaller field of view, earlier stages")
    s.add_argument("--jobs", type=int, default=2, help="worker processes")
    s.add_argument("--overwrite", action="store_true", help="replace an existing cohort directory")

    v = cmd("validate", "check a cohort directory against the data contract and summarise it")
    v.add_argument("cohort", type=Path)
    v.add_argument("--exclude-invalid", action="store_true",
                   help="exclude invalid patients / drop invalid ROIs (logged) instead of failing")
    v.add_argument("--json", action="store_true", help="print the summary as JSON")

    t = cmd("table1", "Table 1: clinical characteristics by DM in train and test, with p-values")
    t.add_argument("clinical_csv", type=Path)
    t.add_argument("--out", type=Path, help="write the table as CSV here")
    t.add_argument("--seed", type=int, default=42, help="split seed (ignored if the table has a split column)")

    n = cmd("tnm", "TNM baseline on the test patients: stage IV vs I–III and ordinal stage")
    n.add_argument("clinical_csv", type=Path)
    n.add_argument("--json", action="store_true")
    n.add_argument("--seed", type=int, default=42)
    d = cmd("datasets", "build (or reuse) the ROI image stores of the eight datasets for a profile")
    d.add_argument("cohort", type=Path)
    d.add_argument("--profile", default="demo", help="smoke, demo, paper or a .yaml path")
    d.add_argument("--runs", type=Path, help="run folder (default runs/<profile>)")
    d.add_argument("--test-fraction", **TEST_FRACTION)

    r = cmd("train", "train one model or the whole dataset × variant × backbone grid of a profile")
    r.add_argument("cohort", type=Path)
    r.add_argument("--profile", default="demo", help="smoke, demo, paper or a .yaml path")
    r.add_argument("--runs", type=Path, help="run folder (default runs/<profile>)")
    r.add_argument("--dataset", action="append", help="restrict to this dataset (repeatable)")
    r.add_argument("--variant", action="append", choices=variant_names())
    r.add_argument("--backbone", action="append", help="restrict to this backbone (repeatable)")
    r.add_argument("--weights", help="override the profile's weights: imagenet, none or a file path")
    r.add_argument("--test-fraction", **TEST_FRACTION)
    e = cmd("evaluate", "Table 2, references, TNM comparisons and DeLong matrix (tables) for a run folder; or its "
                        "models on another site's cohort folder (--external-cohort)")
    e.add_argument("runs_dir", type=Path, nargs="?", help="the run folder (or --run)")
    e.add_argument("--run", type=Path, help="the run folder (instead of the positional argument)")
    e.add_argument("--external-cohort", type=Path, metavar="DIR",
                   help="score the run's models, unchanged, on this cohort folder (another site's, or a synthetic "
                        "centre B); writes RUNS_DIR/external/<name>/evaluation/external.csv")
    e.add_argument("--harmonise", choices=("none", "zscore", "histogram"), default=None,
                   help="with --external-cohort: map the external centre's ROI intensities onto the training images' "
                        "(one linear z-score or quantile map per region and variant, the same for every image; "
                        "default: what the run's main job chose on its tuning draw, else none)")
    e.add_argument("--resample-spacing", action=argparse.BooleanOptionalAction, default=None,
                   help="with --external-cohort: resample the external crops to the training pixel spacing "
                        "(default: what the run's main job chose, else no)")
    e.add_argument("--fit-harmonisation-on", type=Path, metavar="DIR",
                   help="with --harmonise: fit the intensity map on this other cohort folder of the same centre (a "
                        "tuning set), not on the external cohort's own pixels")
    e.add_argument("--cohort", type=Path, help="cohort directory (default: the one recorded in the run folder)")
    e.add_argument("--bootstrap", type=int, default=2000, help="patient bootstrap resamples for AUC CIs")
    e.add_argument("--hybrid-folds", type=int, default=5,
                   help="folds for the hybrid model's out-of-fold image scores (0: skip the hybrid model)")
    e.add_argument("--hybrid-dataset", default="NPC-CMLN", help="dataset whose image score enters the hybrid")
    e.add_argument("--hybrid-variant", default=INTRA_PERITUMOUR, choices=variant_names())
    u = cmd("run", "the main job: its stages (cohort → image store → features → models → analyses → notebooks) as a "
                   "graph on a Dask cluster, each reused while its inputs, settings and code are unchanged; then the book")
    u.add_argument("--profile", default="demo", help="smoke, demo, paper or a .yaml path")
    u.add_argument("--cohort", type=Path, help="your own cohort folder (default: the profile's synthetic cohort)")
    u.add_argument("--runs", type=Path, help="run folder (default runs/<profile>)")
    u.add_argument("--jobs", type=int, default=2, help="light stages run in parallel on a local Dask cluster of this "
                                                       "many workers, beside one worker for the TensorFlow stages "
                                                       "(default 2; 1: every stage one after the other in this process)")
    u.add_argument("--scheduler", metavar="ADDRESS", help="run the stages on this Dask cluster "
                                                        "(tcp://host:8786; workers must share the project folder)")
    u.add_argument("--stop-after", action="append", metavar="STAGE",
                   help="run only this stage and the stages it needs, then stop (no book); repeatable, "
                        "e.g. --stop-after evaluation")
    u.add_argument("--weights", help="override the profile's weights: imagenet, none or a file path")
    u.add_argument("--test-fraction", **TEST_FRACTION)
    u.add_argument("--cell-timeout", type=int, default=3600, help="seconds a notebook cell may run")
    u.add_argument("--book-root", type=Path, default=Path("."), help="project folder with _config.yml")
    u.add_argument("--no-book", action="store_true", help="run every stage but do not build the book")
    u.add_argument("--allow-null-alarm", action="store_true",
                   help="exit 0 even when the negative control raises its alarm (the book shows it either way)")
    m = cmd("rois-from-masks", "rois.csv from label maps (NIfTI, NRRD), DICOM SEG or RTSTRUCT, one rectangle "
                               "per connected component of a region's labels per slice")
    m.add_argument("cohort", type=Path, help="cohort folder (clinical.csv and dicom/<patient>/)")
    m.add_argument("--masks", type=Path, required=True,
                   help="folder with one file per patient: <patient>.nii.gz|.nii|.nrrd|.seg.nrrd|.dcm")
    m.add_argument("--format", required=True, choices=["nifti", "nrrd", "seg", "rtstruct"])
    m.add_argument("--label", action="append", required=True, metavar="REGION=VALUES",
                   help="region and its label values / segment numbers / ROI numbers or names, e.g. npc=1,2 "
                        "(repeatable)")
    m.add_argument("--out", type=Path, required=True, help="the rois.csv to write")
    w = cmd("weights", "check that a backbone's weights behave like ImageNet weights (sample photos, top 5)")
    w.add_argument("action", choices=["check"])
    w.add_argument("--backbone", action="append", help="backbone to check (repeatable; default: all)")
    w.add_argument("--weights", help="a weights file (default: what a run would use: Keras' cache or the bundled "
                                     "Lite0 port)")
    w.add_argument("--image", action="append", default=[], help="also classify this photo (repeatable)")
    w.add_argument("--json", action="store_true")
    return p
