"""A study on the same images with other labels, without re-rendering or re-extracting anything.

The negative control needs the main cohort's images under labels drawn independently of them.
:func:`relabelled_store` makes an image store whose pixel files are hard links to (or, across
file systems, copies of) the source store's files and whose index carries the new labels; it has
its own fingerprint, so every run on it is told apart from the source's. :func:`share_features`
then hands the source's cached backbone features (which depend on pixels only) to the new store,
again by hard links, so no backbone runs twice.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pandas as pd

from npc_lib.atomic import atomic_dir, write_json
from npc_lib.data.cache import CacheError, ImageStore, open_image_store, sha256_file
from npc_lib.errors import NpcError
from npc_lib.layout import features_folder, store_folder


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: a copy is as good, only larger
        shutil.copy2(src, dst)


def relabelled_store(store: ImageStore, labels: pd.Series, cache_dir: str | Path) -> ImageStore:
    """``store``'s images under ``labels`` (patient_id -> 0/1), as a store in ``cache_dir``.

    Every patient of the store needs a label; the new fingerprint covers the source fingerprint
    and the labels. A valid existing store with that fingerprint is reused.
    """
    patients = store.index["patient_id"].unique()
    missing = [p for p in patients if p not in labels.index]
    if missing:
        raise NpcError(f"relabelling store {store.fingerprint}: no label for patient {missing[0]} "
                       f"({len(missing)} patients without one)")
    labels = labels.loc[patients].astype(int)
    if not labels.isin((0, 1)).all():
        raise NpcError(f"relabelling store {store.fingerprint}: labels must be 0 or 1")
    digest = hashlib.sha256(store.fingerprint.encode())
    digest.update(labels.to_csv().encode())
    fp = digest.hexdigest()[:20]
    root = store_folder(Path(cache_dir), fp)
    if root.exists():
        try:
            return open_image_store(root, verify=False)
        except CacheError:
            shutil.rmtree(root)
    with atomic_dir(root) as tmp:
        for name in store.manifest["files"]:
            if name.endswith(".u8"):  # every variant's pixels
                _link_or_copy(store.root / name, tmp / name)
        index = store.index.assign(label=store.index["patient_id"].map(labels).astype(int))
        index.to_parquet(tmp / "index.parquet", index=False)
        manifest = json.loads(json.dumps(store.manifest))
        manifest["files"]["index.parquet"] = sha256_file(tmp / "index.parquet")
        manifest.update(fingerprint=fp, pixels_of=store.manifest.get("pixels_of", store.fingerprint))
        write_json(tmp / "manifest.json", manifest)
    return open_image_store(root, verify=False)


def share_features(source: ImageStore, source_cache: str | Path, target: ImageStore, target_cache: str | Path,
                   folders: list[str]) -> int:
    """Link the source store's cached feature folders named ``folders`` (:func:`npc_lib.learn.features.feature_dir`'s
    names: one backbone, size and weights each) into the target store's feature cache (the target's images must be
    the source's); returns the folders shared. No other folder is opened."""
    if target.manifest.get("pixels_of") not in (source.fingerprint, source.manifest.get("pixels_of")) or \
            any(target.manifest["files"].get(name) != digest for name, digest in source.manifest["files"].items()
                if name.endswith(".u8")):
        raise NpcError(f"store {target.fingerprint} does not hold the images of store {source.fingerprint}")
    src_root = features_folder(Path(source_cache), source.fingerprint)
    dst_root = features_folder(Path(target_cache), target.fingerprint)
    shared = 0
    for folder in (src_root / name for name in sorted(set(folders))):
        manifest_path = folder / "manifest.json"
        if not manifest_path.is_file():
            continue
        dst = dst_root / folder.name
        if (dst / "manifest.json").is_file():
            continue
        with atomic_dir(dst) as tmp:
            for f in folder.iterdir():
                if f.name != "manifest.json" and f.is_file():
                    _link_or_copy(f, tmp / f.name)
            manifest = json.loads(manifest_path.read_text())
            write_json(tmp / "manifest.json", {**manifest, "store": target.fingerprint,
                                               "shared_from": source.fingerprint})
        shared += 1
    return shared
