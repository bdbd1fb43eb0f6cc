"""Per-example image preprocessing of the training pipelines (tfbio.data).

Every function takes one image ``[h, w, c]`` and returns float32. Random
operations are stateless: they take an int64 ``seed`` of shape ``[2]``, so a
pipeline keyed on ``(seed, element index)`` is reproducible whatever the
global TensorFlow seed.

Named preprocessings (``preprocess=`` of ``tfbio.data.get_dataset``):

* ``"none"``: float32 in [0, 1] (resized to ``image_size`` if given) — liao2016
  (no augmentation), amit2019 (no preprocessing).
* ``"cifar_augment"``: in training, zero-pad 4 pixels, random crop back to the
  original size and random left-right flip (bartunov2018's CIFAR
  augmentation); in evaluation, as ``"none"``.
* ``"imagenet_train"``: random-resized crop (scale (0.08, 1), aspect ratio
  (3/4, 4/3)) to ``image_size`` (default 224), random left-right flip and
  ImageNet mean/std normalisation.
* ``"imagenet_eval"``: resize the shorter side to ``image_size * 256 / 224``,
  central ``image_size`` crop, same normalisation.
* ``"imagenet"``: ``"imagenet_train"`` in training, else ``"imagenet_eval"``.
* ``"mnist_normalize"`` / ``"fashion_mnist_normalize"``: as ``"none"``, then
  ``(x - mean) / std`` with the training set's pixel mean and std
  (MNIST 0.1307 / 0.3081, Fashion-MNIST 0.2859 / 0.3530: the constants
  biotorch's MNIST / Fashion-MNIST loaders use), in training and evaluation.
"""

import tensorflow as tf

from tfbio.utils import checks

NAMES = ("none", "cifar_augment", "imagenet", "imagenet_train",
         "imagenet_eval", "mnist_normalize", "fashion_mnist_normalize")
# Per-dataset (mean, std) of the "<dataset>_normalize" preprocessings.
DATASET_MEAN_STD = {"mnist_normalize": ((0.1307,), (0.3081,)),
                    "fashion_mnist_normalize": ((0.2859,), (0.3530,))}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_IMAGENET_SIZE = 224
EVAL_RESIZE_RATIO = 256 / 224


def check_name(preprocess):
  """Returns ``preprocess`` if it is a known name; raises ValueError if not."""
  if not isinstance(preprocess, str) or preprocess not in NAMES:
    raise ValueError(f"Unknown preprocess {preprocess!r}; expected one of "
                     f"{list(NAMES)}.")
  return preprocess


def resolve(preprocess, training):
  """The effective preprocessing: ``"none"``, ``"cifar_augment"``,
  ``"imagenet_train"`` or ``"imagenet_eval"``."""
  check_name(preprocess)
  if preprocess == "imagenet":
    return "imagenet_train" if training else "imagenet_eval"
  if preprocess == "cifar_augment" and not training:
    return "none"
  return preprocess


def is_imagenet(preprocess):
  return check_name(preprocess).startswith("imagenet")


def parse_image_size(image_size):
  """``None``, an int or an ``(h, w)`` pair -> ``None`` or ``(h, w)``."""
  if image_size is None:
    return None
  return checks.int_tuple("image_size", image_size, 2)


def to_float(image):
  """Image to float32; integer images are scaled from [0, max] to [0, 1]."""
  image = tf.convert_to_tensor(image)
  if image.dtype == tf.uint8:
    return tf.cast(image, tf.float32) / 255.0
  if image.dtype.is_integer:
    return tf.image.convert_image_dtype(image, tf.float32)
  return tf.cast(image, tf.float32)


def resize(image, size):
  """Bilinear resize (antialiased when downscaling) to ``size = (h, w)``.

  ``image`` is ``[h, w, c]`` or a batch ``[b, h, w, c]``.
  """
  if tuple(image.shape[-3:-1]) == tuple(size):
    return image
  return tf.image.resize(image, size, method="bilinear", antialias=True)


def pad_crop_flip_batch(images, seed, pad=4):
  """Per image: zero-pad ``pad`` pixels, random crop back, random flip.

  Vectorised over the batch (offsets and flips are drawn per image).

  Args:
    images: float ``[b, h, w, c]`` with static ``h`` and ``w``.
    seed: int64 ``[2]`` stateless seed.
    pad: padding on each side.

  Returns:
    The augmented images, same shape.
  """
  height, width = images.shape[1], images.shape[2]
  if height is None or width is None:
    raise ValueError("pad_crop_flip_batch needs a static image size; got "
                     f"shape {images.shape}.")
  batch = tf.shape(images)[0]
  seeds = tf.random.experimental.stateless_split(seed, 3)
  offset_y = tf.random.stateless_uniform([batch], seeds[0], 0, 2 * pad + 1,
                                         dtype=tf.int32)
  offset_x = tf.random.stateless_uniform([batch], seeds[1], 0, 2 * pad + 1,
                                         dtype=tf.int32)
  flip = tf.random.stateless_uniform([batch], seeds[2]) < 0.5
  padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
  rows = offset_y[:, None] + tf.range(height)[None]
  cols = offset_x[:, None] + tf.range(width)[None]
  cols = tf.where(flip[:, None], tf.reverse(cols, axis=[1]), cols)
  out = tf.gather(padded, rows, axis=1, batch_dims=1)
  out = tf.gather(out, cols, axis=2, batch_dims=1)
  out.set_shape(images.shape)
  return out


def pad_crop_flip(image, seed, pad=4):
  """``pad_crop_flip_batch`` of one image ``[h, w, c]`` (static h, w)."""
  return pad_crop_flip_batch(image[None], seed, pad)[0]


def random_resized_crop(image, size, seed, scale=(0.08, 1.0),
                        ratio=(3 / 4, 4 / 3), max_attempts=10):
  """Random crop of random area and aspect ratio, resized to ``size``.

  The Inception / torchvision ``RandomResizedCrop``: the crop covers a
  fraction in ``scale`` of the image area and has width/height in ``ratio``;
  if no such crop is found in ``max_attempts`` tries, the whole image is used.

  Args:
    image: float ``[h, w, c]``.
    size: output ``(height, width)``.
    seed: int64 ``[2]`` stateless seed.
    scale: range of the crop's fraction of the image area.
    ratio: range of the crop's aspect ratio (width / height).
    max_attempts: sampling attempts.

  Returns:
    float32 ``[size[0], size[1], c]``.
  """
  begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.shape(image),
      bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
      seed=seed,
      min_object_covered=0.0,
      aspect_ratio_range=ratio,
      area_range=scale,
      max_attempts=max_attempts,
      use_image_if_no_bounding_boxes=True)
  crop = tf.slice(image, begin, crop_size)
  out = tf.image.resize(crop, size, method="bilinear", antialias=True)
  out.set_shape([size[0], size[1], image.shape[-1]])
  return out


def resize_center_crop(image, size, resize_ratio=EVAL_RESIZE_RATIO):
  """Resizes so the image covers ``size * resize_ratio``, then center-crops.

  For a square ``size`` this is "resize the shorter side to
  ``size * 256 / 224``, then take the central ``size`` crop".

  Args:
    image: float ``[h, w, c]``.
    size: output ``(height, width)``.
    resize_ratio: resized / cropped size.

  Returns:
    float32 ``[size[0], size[1], c]``.
  """
  height, width = size
  shape = tf.cast(tf.shape(image)[:2], tf.float32)
  target = tf.constant([height * resize_ratio, width * resize_ratio],
                       tf.float32)
  factor = tf.reduce_max(target / shape)
  new_shape = tf.maximum(tf.cast(tf.round(shape * factor), tf.int32),
                         tf.constant([height, width], tf.int32))
  image = tf.image.resize(image, new_shape, method="bilinear", antialias=True)
  top = (new_shape[0] - height) // 2
  left = (new_shape[1] - width) // 2
  image = tf.slice(image, tf.stack([top, left, 0]),
                   tf.stack([height, width, -1]))
  image.set_shape([height, width, image.shape[-1]])
  return image


def normalize(image, mean=IMAGENET_MEAN, std=IMAGENET_STD):
  """Per-channel ``(image - mean) / std``."""
  mean = tf.constant(mean, tf.float32)
  std = tf.constant(std, tf.float32)
  return (image - mean) / std


def output_size(preprocess, image_size):
  """The ``(h, w)`` the preprocessing produces, or None (input size)."""
  size = parse_image_size(image_size)
  if size is None and is_imagenet(preprocess):
    size = (DEFAULT_IMAGENET_SIZE,) * 2
  return size


def supports_batches(preprocess, training):
  """Whether ``make_fn(..., batched=True)`` exists for this preprocessing."""
  return resolve(preprocess, training) in (
      "none", "cifar_augment", *DATASET_MEAN_STD)


def make_fn(preprocess, *, training, image_size=None, batched=False):
  """A preprocessing function ``fn(image, seed) -> float32 image``.

  Args:
    preprocess: a name from ``NAMES``.
    training: whether the data is for training (``"cifar_augment"`` and
      ``"imagenet"`` augment only then).
    image_size: None, int or ``(h, w)``: output size (default 224 for the
      ImageNet preprocessings, the input size otherwise).
    batched: if True, ``fn`` takes a batch ``[b, h, w, c]`` of fixed-size
      images (only where ``supports_batches``); else one image ``[h, w, c]``.

  Returns:
    ``fn(image, seed)`` with ``image`` of any real dtype and ``seed`` an int64
    ``[2]`` tensor.

  Raises:
    ValueError: for an unknown ``preprocess``, an invalid ``image_size``, or
      ``batched`` where not supported.
  """
  kind = resolve(preprocess, training)
  size = output_size(preprocess, image_size)
  if batched and not supports_batches(preprocess, training):
    raise ValueError(f"preprocess={preprocess!r} (training={training}) works "
                     "on single images only.")

  def fn(image, seed):
    image = to_float(image)
    if kind == "imagenet_train":
      seeds = tf.random.experimental.stateless_split(seed, 2)
      image = random_resized_crop(image, size, seeds[0])
      image = tf.image.stateless_random_flip_left_right(image, seed=seeds[1])
      return normalize(image)
    if kind == "imagenet_eval":
      return normalize(resize_center_crop(image, size))
    if size is not None:
      image = resize(image, size)
    if kind == "cifar_augment":
      augment = pad_crop_flip_batch if batched else pad_crop_flip
      image = augment(image, seed)
    if kind in DATASET_MEAN_STD:
      image = normalize(image, *DATASET_MEAN_STD[kind])
    return image

  return fn
