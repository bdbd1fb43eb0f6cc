"""``get_dataset`` / ``dataset_info``: batched (image, label) pipelines.

``get_dataset`` chains a source (``tfbio.data.sources``), the per-example
preprocessing (``tfbio.data.preprocessing``) keyed on ``(seed, element
index)``, batching and prefetching.
"""

from absl import logging
import tensorflow as tf

from tfbio.data import preprocessing
from tfbio.data import sources
from tfbio.utils import checks


def names():
  """The built-in offline dataset names (``"image_folder"`` also takes the
  form ``"folder:<path>"``); any other name is looked up in
  tensorflow-datasets."""
  return list(sources.BUILTIN_NAMES)


def dataset_info(name, data_dir=None, *, image_size=None):
  """Metadata of a dataset, reading headers / directory listings only.

  Args:
    name: dataset name, as for ``get_dataset``.
    data_dir: data directory, as for ``get_dataset``.
    image_size: if given (int or ``(h, w)``), ``input_shape`` is that of the
      images resized to it (as ``get_dataset(image_size=...)`` yields them).

  Returns:
    ``dict(num_classes=int, input_shape=(h, w, c), num_examples={split: n},
    source=str)``; ``h`` and ``w`` are None for image folders (and variable-
    size tfds datasets) unless ``image_size`` is given.

  Raises:
    FileNotFoundError: if the data is missing (the message says where it
      looked and how to provide the data).
    ValueError: for an unknown name or a bad ``image_size``.
  """
  info = sources.get_source(name, data_dir).info()
  size = preprocessing.parse_image_size(image_size)
  shape = tuple(info["input_shape"])
  if size is not None:
    shape = size + shape[2:]
  info["input_shape"] = shape
  return info


def get_dataset(name, split, *, batch_size, data_dir=None, image_size=None,
                preprocess="none", shuffle=True, seed=0, repeat=False,
                drop_remainder=False, shuffle_buffer=10000, training=None):
  """Batched ``(image float32 [b, h, w, c], label int32 [b])`` dataset.

  Args:
    name: ``"digits"`` (scikit-learn's 8x8 digits; splits ``train`` 75% /
      ``test`` 25% of a fixed permutation), ``"fashion_mnist_idx"`` /
      ``"mnist_idx"`` (IDX files in ``data_dir``, default
      ``/usr/share/datasets/fashion-mnist`` / ``/usr/share/datasets/mnist``;
      splits ``train`` / ``test``), ``"folder:<path>"`` or ``"image_folder"``
      with ``data_dir=<path>`` (``<path>/<split>/<class>/<image>``), or any
      tensorflow-datasets name (never downloaded when offline).
    split: split name (tfds names also accept tfds slicing).
    batch_size: positive batch size.
    data_dir: data directory (IDX directory, folder root or tfds data_dir).
    image_size: None, int or ``(h, w)``: images are resized (bilinear) to it;
      required for variable-size images (image folders) unless ``preprocess``
      is an ImageNet one (default 224).
    preprocess: ``"none"`` (float32 in [0, 1]), ``"cifar_augment"``,
      ``"imagenet"``, ``"imagenet_train"`` or ``"imagenet_eval"``; see
      ``tfbio.data.preprocessing``.
    shuffle: shuffle the examples (each epoch differently when ``repeat``).
    seed: int seed of shuffling and augmentation; the same seed gives the same
      stream (for tfds sources, given the same global TensorFlow seed too).
    repeat: repeat endlessly.
    drop_remainder: drop the last incomplete batch.
    shuffle_buffer: shuffle buffer size (tfds sources only; the other sources
      use a full permutation).
    training: whether augmentation of ``"cifar_augment"`` / ``"imagenet"``
      applies; default: ``split`` is ``"train"`` (or a tfds slice of it).

  Returns:
    A ``tf.data.Dataset``.

  Raises:
    ValueError: for a bad argument (unknown preprocess or split, batch size,
      ...).
    FileNotFoundError: if the data is missing (the message says where it
      looked and how to provide the data).
  """
  batch_size = checks.positive_int("batch_size", batch_size)
  seed = checks.integer("seed", seed)
  shuffle_buffer = checks.positive_int("shuffle_buffer", shuffle_buffer)
  preprocessing.check_name(preprocess)
  size = preprocessing.parse_image_size(image_size)
  if not isinstance(split, str) or not split:
    raise ValueError(f"split must be a non-empty string. Received: "
                     f"split={split!r}")
  if training is None:
    training = split.split("[", 1)[0].strip() == "train"

  source = sources.get_source(name, data_dir)
  ds = source.examples(split, shuffle=bool(shuffle), seed=seed,
                       repeat=bool(repeat), shuffle_buffer=shuffle_buffer)
  image_spec = ds.element_spec[0]
  channels = image_spec.shape[-1]
  if preprocessing.is_imagenet(preprocess):
    if channels != 3:
      raise ValueError(f"preprocess={preprocess!r} normalises 3 RGB channels "
                       f"but {name!r} images have {channels} channel(s) "
                       f"(shape {image_spec.shape}).")
  elif size is None and not image_spec.shape.is_fully_defined():
    raise ValueError(f"{name!r} images have varying sizes (shape "
                     f"{image_spec.shape}); pass image_size= (or an ImageNet "
                     "preprocess) so that they can be batched.")
  seed_key = tf.constant([seed, 2], tf.int64)
  # Fixed-size images with a batch-friendly preprocessing are preprocessed a
  # batch at a time (far fewer tf.data calls); others one image at a time.
  # Either way the random ops are keyed on (seed, element or batch index).
  batched = (preprocessing.supports_batches(preprocess, training) and
             image_spec.shape.is_fully_defined())
  fn = preprocessing.make_fn(preprocess, training=bool(training),
                             image_size=size, batched=batched)

  @tf.autograph.experimental.do_not_convert
  def apply(index, example):
    image, label = example
    element_seed = tf.random.experimental.stateless_fold_in(seed_key, index)
    return fn(image, element_seed), label

  if batched:
    ds = ds.batch(batch_size, drop_remainder=bool(drop_remainder))
    ds = ds.enumerate().map(apply, num_parallel_calls=tf.data.AUTOTUNE)
  else:
    ds = ds.enumerate().map(apply, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=bool(drop_remainder))
  sources.info_once(
      ("pipeline", name, split, bool(training)),
      "tfbio.data: %s split %r: batch_size=%d preprocess=%r (training=%s) "
      "image_size=%s shuffle=%s seed=%d repeat=%s.", name, split, batch_size,
      preprocess, bool(training), size, bool(shuffle), seed, bool(repeat))
  return ds.prefetch(tf.data.AUTOTUNE)
