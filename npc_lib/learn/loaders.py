"""Streaming tf.data pipelines over an image store (uint8 memmap → backbone-ready batches)."""
from __future__ import annotations

import numpy as np


def tf_images(images: np.memmap, rows: np.ndarray, spec, input_size: int, batch_size: int,
              labels: np.ndarray | None = None, shuffle: bool = False, seed: int = 0):
    """Batches of ``images[rows]`` as float32 [b, size, size, 3], preprocessed for ``spec``.

    Only one batch of rows is read from the memmap at a time (never the whole cohort).
    With ``labels`` the dataset yields ``(x, y)``.
    """
    import tensorflow as tf

    rows = np.asarray(rows, dtype=np.int64)
    stored = images.shape[1]

    def gather(idx):
        order = np.sort(rows[idx])  # sorted reads are sequential on disk
        back = np.argsort(np.argsort(rows[idx]))
        return np.asarray(images[order])[back]

    ds = tf.data.Dataset.range(len(rows))
    if shuffle:
        ds = ds.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def load(idx):
        x = tf.numpy_function(gather, [idx], tf.uint8)
        x = tf.reshape(x, (-1, stored, stored, 1))
        x = tf.image.grayscale_to_rgb(tf.cast(x, tf.float32))
        if input_size != stored:
            x = tf.image.resize(x, (input_size, input_size), method="bilinear")
        x = spec.preprocess(x)
        if labels is None:
            return x
        y = tf.gather(tf.constant(np.asarray(labels, np.float32)), idx)
        return x, y

    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def preprocessed_chunks(images: np.ndarray, spec, input_size: int, chunk: int = 256):
    """Yield preprocessed float32 arrays [k, size, size, 3] of ``chunk`` consecutive images.

    Reads the memmap sequentially, one chunk in RAM at a time; used for feature extraction,
    where handing ``model.predict`` plain arrays avoids tf.data threads competing with the
    model's own threads on small CPUs.
    """
    for start in range(0, images.shape[0], chunk):
        yield preprocess_images(images[start:start + chunk], spec, input_size)


def preprocess_images(images: np.ndarray, spec, input_size: int) -> np.ndarray:
    """Stored uint8 images [k, s, s] → backbone-ready float32 [k, size, size, 3]."""
    import tensorflow as tf

    x = np.repeat(np.asarray(images, dtype=np.float32)[..., None], 3, axis=-1)
    if input_size != x.shape[1]:
        x = tf.image.resize(x, (input_size, input_size), method="bilinear").numpy()
    return np.asarray(spec.preprocess(x), dtype=np.float32)
