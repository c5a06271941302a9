"""Reading prepared TFDS datasets: the one place bertjax calls `tfds.load`.

Nothing is downloaded at run time (`download=False`): a dataset must have been prepared
beforehand (`tfds build NAME --data_dir=DIR`, once, on a machine with network access). A dataset
that is not prepared is an error that names it, the folder searched and how to prepare it (or
what else to read), instead of TFDS's own assertion or a download attempt that hangs offline.
"""

from __future__ import annotations


class DatasetNotPreparedError(FileNotFoundError):
    """A TFDS dataset has no prepared data in the data folder; the message says what to do."""


def load(name: str, split: str, data_dir: str | None = None, *, alternative: str = ""):
    """`tfds.load(name, split=split)` of a prepared dataset, files in their stored order.

    Args:
      name: TFDS name with config, e.g. "glue/rte".
      split: e.g. "train", "validation[:10%]".
      data_dir: the TFDS data folder (default: TFDS's, ~/tensorflow_datasets or $TFDS_DATA_DIR).
      alternative: a sentence appended to the not-prepared error (e.g. another source).
    Returns:
      The tf.data.Dataset of feature dicts.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

    try:
        tf.config.set_visible_devices([], "GPU")  # tf.data only; the accelerator belongs to JAX.
    except RuntimeError:
        pass  # Devices were initialised already; TF then keeps its earlier choice.
    try:
        return tfds.load(name, split=split, data_dir=data_dir, download=False,
                         shuffle_files=False)
    except AssertionError as error:  # TFDS's way of saying the data folder lacks the dataset
        if "could not find data" not in str(error):
            raise
        where = data_dir or "the default TFDS data folder (~/tensorflow_datasets or $TFDS_DATA_DIR)"
        target = f" --data_dir={data_dir}" if data_dir else ""
        raise DatasetNotPreparedError(
            f"TFDS dataset {name} is not prepared in {where}. Prepare it once (this downloads "
            f"it): `tfds build {name}{target}`." + (f" {alternative}" if alternative else "")
        ) from error
