"""Stages ``external:store`` and ``external:scores``: the second centre's evaluation draw as the models see it, and
every model's scores of it.

Reads: the image store (the training geometry and spacing), the second centre's evaluation and tuning draws
(stages ``centre:<name>``, ``centre:<name>:tuning``), the harmonisation chosen on the tuning draw (stage
``harmonisation``) and every finished model; the profile's ``external`` block.
Writes: ``external/<name>/``: the evaluation draw's image store cut with the run's geometry and harmonised as
chosen (the intensity map fitted on the tuning draw's pixels) and ``external_store.json`` (``external:store``, light:
DICOM reading and cutting); each backbone's features of it and ``external_scores.parquet``, every model's
probability of every image (``external:scores``, the TensorFlow part, each backbone built once).
Serves: the book's "Does it travel?" chapter (stage ``external`` makes its tables).
"""
from __future__ import annotations

import pandas as pd

from npc_lib.atomic import atomic_path, write_json
from npc_lib.data.cache import open_image_store
from npc_lib.learn.external_scores import external_store, finished_runs, score_store
from npc_lib.stage import Stage
from npc_lib.stages.harmonisation import run_harmonisation

def prepare_external_store(ctx) -> list:
    """The evaluation draw's image store, cut with the run's geometry and harmonised as chosen on the tuning draw
    (the intensity map fitted on the tuning draw's pixels), checked against what the models were trained on."""
    ext, layout = ctx.profile.external, ctx.layout
    chosen = run_harmonisation(layout)
    cohort_dir, tuning = layout.centre_cohort(ext.centre), layout.tuning_cohort(ext.centre)
    out = layout.external_run(ext.centre)
    store, _, warnings = external_store(layout, cohort_dir, progress=False, out=out, harmonisation=chosen,
                                        fit_cohort=tuning if tuning.is_dir() else None)
    record = out.external_store_record
    write_json(record, {"store": store.fingerprint, "harmonisation": list(chosen), "warnings": warnings})
    return [store.root, record]


def score_externally(ctx) -> list:
    """Every model's scores of the evaluation draw's images (each backbone's features computed once)."""
    import json
    out = ctx.layout.external_run(ctx.profile.external.centre)
    fp = json.loads((out.external_store_record).read_text())["store"]
    store = open_image_store(out.image_store(fp), verify=False)
    predictions, _ = score_store(finished_runs(ctx.layout), store, out.cache)
    frame = pd.concat([p.assign(dataset=d, variant=v, backbone=b) for (d, v, b), p in sorted(predictions.items())],
                      ignore_index=True)
    with atomic_path(out.external_scores, suffix=".parquet") as tmp:
        frame.to_parquet(tmp, index=False)
    return [out.external_scores]


def stages(ctx, known: frozenset = frozenset()) -> list[Stage]:
    if not ctx.synthetic or ctx.profile.external is None:
        return []
    centre = f"centre:{ctx.profile.external.centre}"
    models = tuple(sorted(k for k in known if k.startswith("models:")))
    return [
        Stage("external:store", prepare_external_store, needs=("store", centre, "harmonisation", *models),
              reads=("external",), serves="Does it travel? the second centre's images as the models see them"),
        Stage("external:scores", score_externally, needs=("external:store", *models), reads=("external",),
              heavy=True, serves="Does it travel? every model's scores on the second centre"),
    ]
