"""Data sources of tfbio.data: where the (image, label) examples come from.

A source yields unbatched ``(image [h, w, c], label int32)`` examples, images
as stored (uint8, or float32 in [0, 1]); ``tfbio.data.datasets`` adds the
preprocessing and batching. Sources:

* ``"digits"``: scikit-learn's bundled 8x8 digits (offline);
* ``"fashion_mnist_idx"`` / ``"mnist_idx"``: IDX files in a directory
  (offline);
* ``"folder:<path>"`` / ``"image_folder"`` + ``data_dir``: ImageNet-layout
  image folders ``<path>/<split>/<class>/*.jpg`` (offline);
* any other name: a tensorflow-datasets builder, downloaded only when the
  prepared data is absent and the network is reachable.

The in-memory and folder sources shuffle with a stateless permutation
(``tf.random.experimental.index_shuffle``) keyed on ``(seed, epoch)``, so their
order depends on ``seed`` only. The tfds source uses tfds' file shuffling and
``Dataset.shuffle(seed=seed)``, whose order also depends on the global
TensorFlow seed (e.g. ``keras.utils.set_random_seed``).
"""

import contextlib
import functools
import os
import re
import socket
import threading

from absl import logging
import numpy as np
import tensorflow as tf

from tfbio.data import idx as idx_lib

# Where the Debian packages dataset-fashion-mnist / dataset-mnist put the IDX
# files.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
MNIST_DIR = "/usr/share/datasets/mnist"
DEFAULT_IDX_DIRS = {
    "fashion_mnist_idx": FASHION_MNIST_DIR,
    "mnist_idx": MNIST_DIR,
}
FOLDER_PREFIX = "folder:"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
BUILTIN_NAMES = ("digits", "fashion_mnist_idx", "image_folder", "mnist_idx")
OFFLINE_HINT = ("or use an offline source: 'digits', 'fashion_mnist_idx' "
                "(apt-get install dataset-fashion-mnist), 'mnist_idx', "
                "'folder:<path>'")
_AUTOTUNE = tf.data.AUTOTUNE
# First bytes of the image formats tf.io.decode_image reads.
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")
# Marks an unreadable image in a pipeline's error (named_input_errors).
_UNREADABLE = "tfbio.data: unreadable image"


_LOGGED = set()


def info_once(key, message, *args):
  """``logging.info`` the first time ``key`` is seen, ``debug`` after.

  A training run rebuilds its pipelines every epoch; their description is
  worth one line, not one per epoch.
  """
  level = logging.DEBUG if key in _LOGGED else logging.INFO
  _LOGGED.add(key)
  logging.log(level, message, *args)


# Log lines name info_once's caller, not info_once.
logging.ABSLLogger.register_frame_to_skip(__file__, "info_once")


def read_image(path, channels=3):
  """The uint8 image of the JPEG, PNG, GIF or BMP file ``path`` (in graph).

  A file that is none of these fails when the pipeline runs with an error
  naming it; :func:`named_input_errors` turns it into a one-line
  ValueError.
  """
  contents = tf.io.read_file(path)
  known = tf.reduce_any(tf.stack([
      tf.equal(tf.strings.substr(contents, 0, len(magic)), magic)
      for magic in _IMAGE_MAGIC]))
  check = tf.debugging.Assert(known, [_UNREADABLE, path], summarize=1)
  with tf.control_dependencies([check]):
    return tf.io.decode_image(contents, channels=channels,
                              expand_animations=False)


@contextlib.contextmanager
def named_input_errors():
  """Turns a pipeline's unreadable or missing input file into a ValueError.

  tf.data reports them from inside the training step as multi-line
  ``tf.errors`` without (for images that do not decode) the file's name;
  the ValueError is one line naming the file.
  """
  try:
    yield
  except tf.errors.InvalidArgumentError as e:
    found = re.search(re.escape(_UNREADABLE) + r"\] \[(.*?)\]\n", e.message)
    if not found:
      raise
    raise ValueError(f"cannot read image {found.group(1)!r}: not a JPEG, "
                     "PNG, GIF or BMP file") from None
  except (tf.errors.NotFoundError, tf.errors.PermissionDeniedError) as e:
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", e.message)
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    raise ValueError(f"cannot read an input file: "
                     f"{lines[0] if lines else type(e).__name__}") from None


def fashion_mnist_idx_present(data_dir=None):
  """Whether ``data_dir`` holds Fashion-MNIST's train and test IDX files.

  Args:
    data_dir: the directory; None: :data:`FASHION_MNIST_DIR`.

  Returns:
    True if both splits' image and label files (plain or ``.gz``) are there,
    i.e. the source ``"fashion_mnist_idx"`` can load them.
  """
  directory = FASHION_MNIST_DIR if data_dir is None else os.fspath(data_dir)
  return os.path.isdir(directory) and all(
      path is not None for split in idx_lib.SPLIT_PREFIXES
      for path in idx_lib.find_split_files(directory, split))


def internet_available(host="storage.googleapis.com", port=443, timeout=3.0):
  """Whether a TCP connection to ``host:port`` opens within ``timeout`` s.

  DNS resolution is included in the time limit (the check runs in a daemon
  thread), so this never blocks much longer than ``timeout``.
  """
  result = []

  def connect():
    try:
      socket.create_connection((host, port), timeout=timeout).close()
      result.append(True)
    except OSError:
      result.append(False)

  thread = threading.Thread(target=connect, daemon=True)
  thread.start()
  thread.join(timeout + 0.5)
  return bool(result and result[0])


_SLICE = re.compile(r"^(?P<base>[A-Za-z0-9_]+)\[(?P<start>-?\d*):(?P<stop>-?\d*)\]$")


def parse_split(split):
  """``"train[:55000]"`` -> ``("train", slice(None, 55000))``; a plain name
  -> ``(name, None)``. Integer bounds, Python slice semantics (as
  tensorflow-datasets' split slicing); anything else is taken as a name."""
  match = _SLICE.match(split) if isinstance(split, str) else None
  if not match:
    return split, None
  bound = lambda text: int(text) if text else None  # pylint: disable=unnecessary-lambda-assignment
  return match["base"], slice(bound(match["start"]), bound(match["stop"]))


def split_size(num_examples, split):
  """Examples in ``split`` (a name or ``"name[a:b]"``) given the per-name
  counts ``num_examples`` (``dataset_info(...)["num_examples"]``), or None
  if the name is not among them."""
  base, part = parse_split(split)
  if base not in num_examples:
    return None
  n = num_examples[base]
  return n if part is None else len(range(n)[part])


def _check_split(split, splits, what):
  base, _ = parse_split(split)
  if base not in splits:
    raise ValueError(f"Unknown split {split!r} for {what}; expected one of "
                     f"{list(splits)} (or a slice such as 'train[:55000]').")


def _index_chunks(num_examples, *, shuffle, seed, repeat, chunk=1024):
  """int64 index vectors (up to ``chunk`` long) into ``[0, num_examples)``.

  One epoch, or endless epochs if ``repeat``; with ``shuffle`` each epoch is a
  permutation keyed on ``(seed, epoch)``. Chunks never span epochs.
  """
  epochs = (tf.data.Dataset.counter() if repeat
            else tf.data.Dataset.range(1))
  key = tf.constant([seed, 1], tf.int64)
  max_index = tf.constant(num_examples - 1, tf.int64)

  @tf.autograph.experimental.do_not_convert
  def epoch_chunks(epoch):
    chunks = tf.data.Dataset.range(num_examples).batch(chunk)
    if not shuffle:
      return chunks
    epoch_key = tf.random.experimental.stateless_fold_in(key, epoch)

    @tf.autograph.experimental.do_not_convert
    def permute(indices):
      return tf.random.experimental.index_shuffle(indices, epoch_key,
                                                  max_index)

    return chunks.map(permute)

  return epochs.flat_map(epoch_chunks)


def _with_cardinality(ds, num_examples, repeat):
  """Declares the cardinality that ``flat_map`` hides (so that Keras knows
  the epoch length and does not warn about running out of data)."""
  cardinality = tf.data.INFINITE_CARDINALITY if repeat else num_examples
  return ds.apply(tf.data.experimental.assert_cardinality(cardinality))


class Source:
  """Base class of the data sources.

  Attributes:
    name: the dataset name given to ``get_dataset``.
  """

  name = None

  def splits(self):
    """The split names."""
    raise NotImplementedError

  def info(self):
    """``dict(num_classes, input_shape, num_examples, source)``."""
    raise NotImplementedError

  def examples(self, split, *, shuffle, seed, repeat, shuffle_buffer):
    """Unbatched ``(image, label)`` dataset of one split."""
    raise NotImplementedError


class ArraySource(Source):
  """Examples held in NumPy arrays, per split (digits, IDX)."""

  num_classes = None
  description = None

  def load(self, split):
    """``(images [n, h, w, c], labels int32 [n])`` of a valid split."""
    raise NotImplementedError

  def examples(self, split, *, shuffle, seed, repeat, shuffle_buffer):
    del shuffle_buffer  # Full permutation; no buffer.
    _check_split(split, self.splits(), f"dataset {self.name!r}")
    base, part = parse_split(split)
    images, labels = self.load(base)
    if part is not None:
      images, labels = images[part], labels[part]
    if not len(images):
      raise ValueError(f"Split {split!r} of {self.description} is empty.")
    info_once(("examples", self.description, split),
              "tfbio.data: %s split %r: %d examples %s.", self.description,
              split, len(images), images.shape[1:])
    images = tf.constant(images)
    labels = tf.constant(labels, tf.int32)

    @tf.autograph.experimental.do_not_convert
    def lookup(indices):
      return tf.gather(images, indices), tf.gather(labels, indices)

    chunks = _index_chunks(len(labels), shuffle=shuffle, seed=seed,
                           repeat=repeat)
    ds = chunks.map(lookup, num_parallel_calls=_AUTOTUNE).unbatch()
    return _with_cardinality(ds, len(labels), repeat)


@functools.lru_cache(maxsize=1)
def _digits_splits():
  try:
    from sklearn import datasets  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError("The 'digits' dataset needs scikit-learn: "
                      "pip install scikit-learn") from None
  digits = datasets.load_digits()
  images = (digits.images / 16.0).astype(np.float32)[..., None]
  labels = digits.target.astype(np.int32)
  order = np.random.RandomState(0).permutation(len(images))
  num_train = int(0.75 * len(images))
  train, test = order[:num_train], order[num_train:]
  return {"train": (images[train], labels[train]),
          "test": (images[test], labels[test])}


class DigitsSource(ArraySource):
  """scikit-learn's bundled 8x8 digits: 1,797 images, 10 classes.

  Pixels are ``value / 16`` in [0, 1]. Splits: a fixed permutation (NumPy
  ``RandomState(0)``), first 75% ``"train"`` (1,347), rest ``"test"`` (450) —
  the split of ``tools/digits_demo.py --seed=0``.
  """

  name = "digits"
  num_classes = 10
  description = "digits (sklearn.datasets.load_digits)"

  def splits(self):
    return ("train", "test")

  def load(self, split):
    return _digits_splits()[split]

  def info(self):
    splits = _digits_splits()
    return dict(num_classes=self.num_classes,
                input_shape=splits["train"][0].shape[1:],
                num_examples={k: len(v[1]) for k, v in splits.items()},
                source="sklearn.datasets.load_digits")


@functools.lru_cache(maxsize=4)
def _load_idx_cached(images_path, labels_path, num_classes, stamp):
  """``idx.load_split``, cached (read-only arrays) while the files' mtime and
  size (``stamp``) are unchanged: a training loop that builds a dataset per
  epoch reads the files once."""
  del stamp  # Only part of the cache key.
  images, labels = idx_lib.load_split(images_path, labels_path,
                                      num_classes=num_classes)
  images.setflags(write=False)
  labels.setflags(write=False)
  return images, labels


class IdxSource(ArraySource):
  """MNIST-format IDX files in a directory (see ``tfbio.data.idx``).

  Splits ``"train"`` (``train-*``) and ``"test"`` (``t10k-*``); images uint8
  ``[n, 28, 28, 1]``, 10 classes.
  """

  num_classes = 10

  def __init__(self, name, data_dir=None):
    self.name = name
    self.directory = os.path.abspath(os.path.expanduser(
        os.fspath(data_dir) if data_dir is not None
        else DEFAULT_IDX_DIRS[name]))
    self.description = f"{name} ({self.directory})"

  def splits(self):
    return tuple(idx_lib.SPLIT_PREFIXES)

  def _how_to(self):
    if self.name == "fashion_mnist_idx":
      how = ("install the Debian package: apt-get install "
             "dataset-fashion-mnist (files go to "
             f"{DEFAULT_IDX_DIRS[self.name]}), or download the files from "
             "github.com/zalandoresearch/fashion-mnist")
    else:
      how = "download the MNIST files (yann.lecun.com/exdb/mnist or a mirror)"
    return f"{how} and pass data_dir=<directory with the files>"

  def _files(self, split):
    if not os.path.isdir(self.directory):
      raise FileNotFoundError(
          f"{self.name}: data directory {self.directory} does not exist; "
          f"{self._how_to()}.")
    images_path, labels_path = idx_lib.find_split_files(self.directory, split)
    if images_path is None or labels_path is None:
      raise FileNotFoundError(
          f"{self.name}: {self.directory} lacks the {split!r} IDX files "
          f"{idx_lib.expected_file_names(split)} (plain or .gz); "
          f"{self._how_to()}.")
    return images_path, labels_path

  def load(self, split):
    images_path, labels_path = self._files(split)
    stamp = tuple((os.stat(p).st_mtime_ns, os.stat(p).st_size)
                  for p in (images_path, labels_path))
    return _load_idx_cached(images_path, labels_path, self.num_classes, stamp)

  def info(self):
    num_examples, shape = {}, None
    for split in self.splits():
      images_path, labels_path = self._files(split)
      _, _, dims = idx_lib.read_idx_header(images_path, idx_lib.IMAGES_MAGIC)
      _, _, label_dims = idx_lib.read_idx_header(labels_path,
                                                 idx_lib.LABELS_MAGIC)
      if len(dims) != 3 or label_dims != dims[:1]:
        raise ValueError(f"{images_path} (shape {dims}) and {labels_path} "
                         f"(shape {label_dims}) do not match.")
      num_examples[split] = dims[0]
      shape = (dims[1], dims[2], 1)
    return dict(num_classes=self.num_classes, input_shape=shape,
                num_examples=num_examples, source=f"idx:{self.directory}")


class FolderSource(Source):
  """ImageNet-layout image folders: ``<root>/<split>/<class>/<image>``.

  Splits are the subdirectories of ``root``; classes are the sorted union of
  the class-directory names over all splits, so a label means the same class
  in every split. Images (``.jpg .jpeg .png .bmp .gif``, searched recursively
  in each class directory) are decoded to uint8 RGB of their own size.
  """

  def __init__(self, name, root):
    self.name = name
    self.root = os.path.abspath(os.path.expanduser(os.fspath(root)))

  def _check_root(self):
    if not os.path.isdir(self.root):
      raise FileNotFoundError(
          f"Image folder {self.root} does not exist; provide the data as "
          f"{self.root}/<split>/<class>/<image>.jpg (e.g. train/ and val/ "
          "with one subdirectory per class) and pass name='folder:<path>'.")

  def splits(self):
    self._check_root()
    return tuple(sorted(
        entry.name for entry in os.scandir(self.root)
        if entry.is_dir() and not entry.name.startswith(".")))

  def classes(self):
    """Sorted class names, over all splits."""
    names = set()
    for split in self.splits():
      split_dir = os.path.join(self.root, split)
      names.update(entry.name for entry in os.scandir(split_dir)
                   if entry.is_dir() and not entry.name.startswith("."))
    return sorted(names)

  def files(self, split, classes=None):
    """``(paths, labels)`` of one split, sorted by class then path."""
    _check_split(split, self.splits(), f"image folder {self.root}")
    split, part = parse_split(split)
    classes = self.classes() if classes is None else classes
    paths, labels = [], []
    for label, class_name in enumerate(classes):
      class_dir = os.path.join(self.root, split, class_name)
      if not os.path.isdir(class_dir):
        continue
      found = []
      for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
        dirnames.sort()
        found.extend(os.path.join(dirpath, f) for f in filenames
                     if f.lower().endswith(IMAGE_EXTENSIONS))
      found.sort()
      paths.extend(found)
      labels.extend([label] * len(found))
    if part is not None:
      paths, labels = paths[part], labels[part]
    return paths, labels

  def info(self):
    classes = self.classes()
    return dict(num_classes=len(classes), input_shape=(None, None, 3),
                num_examples={split: len(self.files(split, classes)[0])
                              for split in self.splits()},
                source=f"folder:{self.root}")

  def examples(self, split, *, shuffle, seed, repeat, shuffle_buffer):
    del shuffle_buffer  # Full permutation of the file list; no buffer.
    paths, labels = self.files(split)
    if not paths:
      raise FileNotFoundError(
          f"No images ({', '.join(IMAGE_EXTENSIONS)}) under "
          f"{os.path.join(self.root, split)}/<class>/; provide the data as "
          f"{self.root}/{split}/<class>/<image>.jpg.")
    info_once(("folder", self.root, split),
              "tfbio.data: image folder %s split %r: %d images, %d classes.",
              self.root, split, len(paths), len(self.classes()))
    paths = tf.constant(paths)
    labels = tf.constant(labels, tf.int32)

    @tf.autograph.experimental.do_not_convert
    def load(i):
      image = read_image(tf.gather(paths, i))
      image.set_shape([None, None, 3])
      return image, tf.gather(labels, i)

    indices = _index_chunks(len(labels), shuffle=shuffle, seed=seed,
                            repeat=repeat).unbatch()
    ds = indices.map(load, num_parallel_calls=_AUTOTUNE)
    return _with_cardinality(ds, len(labels), repeat)


class TfdsSource(Source):
  """A tensorflow-datasets builder, used only once its data is prepared.

  If the prepared data is not under ``data_dir`` (tfds' default directory when
  None), it is downloaded and prepared only when storage.googleapis.com is
  reachable (3 s check); otherwise a FileNotFoundError says where it looked
  and how to provide the data — never tfds' minutes of download retries.
  """

  def __init__(self, name, data_dir=None):
    self.name = name
    self.data_dir = (None if data_dir is None
                     else os.path.abspath(os.path.expanduser(
                         os.fspath(data_dir))))
    self._builder = None

  def builder(self):
    """The prepared ``tfds`` builder (prepared now if needed and possible)."""
    if self._builder is not None:
      return self._builder
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    # "namespace:name" (community datasets) resolves over the network.
    if (re.match(r"^[\w-]+:[A-Za-z_]", self.name) and
        not internet_available()):
      raise FileNotFoundError(
          f"Dataset {self.name!r} is a tfds community dataset, which needs "
          f"the network (unreachable); {OFFLINE_HINT}.")
    try:
      builder = tfds.builder(self.name, data_dir=self.data_dir)
    except tfds.core.DatasetNotFoundError:
      raise ValueError(
          f"Unknown dataset {self.name!r}: not a tfbio.data source "
          f"({list(BUILTIN_NAMES)}, 'folder:<path>') nor a "
          "tensorflow-datasets name (tfds.list_builders()).") from None
    if not builder.is_prepared():
      root = os.fspath(builder.data_dir_root)
      if not internet_available():
        raise FileNotFoundError(
            f"tfds dataset {self.name!r} is not prepared in "
            f"{builder.data_dir} (data_dir={root}) and the network is "
            "unreachable; on a machine with internet run `tfds build "
            f"{self.name} --data_dir={root}` and copy that directory here "
            f"(or pass data_dir=), {OFFLINE_HINT}.")
      logging.info("tfbio.data: downloading and preparing tfds %r into %s.",
                   self.name, root)
      builder.download_and_prepare()
    if builder.info.supervised_keys is None:
      raise ValueError(f"tfds dataset {self.name!r} has no supervised keys "
                       "(image, label); tfbio.data needs a classification "
                       "dataset.")
    self._builder = builder
    return builder

  def splits(self):
    return tuple(self.builder().info.splits)

  def _features(self):
    info = self.builder().info
    image_key, label_key = info.supervised_keys[:2]
    return info.features[image_key], info.features[label_key]

  def info(self):
    builder = self.builder()
    image, label = self._features()
    shape = tuple(image.shape)
    if len(shape) == 2:
      shape += (1,)
    return dict(num_classes=getattr(label, "num_classes", None),
                input_shape=shape,
                num_examples={k: v.num_examples
                              for k, v in builder.info.splits.items()},
                source=f"tfds:{builder.info.full_name}@"
                       f"{os.fspath(builder.data_dir_root)}")

  def examples(self, split, *, shuffle, seed, repeat, shuffle_buffer):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    builder = self.builder()
    if builder.info.splits:  # Empty only under tfds.testing.mock_data.
      try:
        builder.info.splits[split]  # pylint: disable=pointless-statement
      except (KeyError, ValueError, TypeError, AssertionError):
        raise ValueError(
            f"Unknown split {split!r} for tfds dataset {self.name!r}; "
            f"expected one of {list(builder.info.splits)} (tfds slicing "
            "such as 'train[:90%]' is allowed).") from None
    read_config = tfds.ReadConfig(shuffle_seed=seed)
    ds = builder.as_dataset(split=split, as_supervised=True,
                            shuffle_files=shuffle, read_config=read_config)
    if shuffle:
      ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
      ds = ds.repeat()

    @tf.autograph.experimental.do_not_convert
    def cast(image, label):
      if image.shape.rank == 2:
        image = image[..., None]
      return image, tf.cast(label, tf.int32)

    return ds.map(cast, num_parallel_calls=_AUTOTUNE)


def get_source(name, data_dir=None):
  """The ``Source`` for a dataset name (see the module docstring).

  Raises:
    ValueError: for a malformed name.
  """
  if not isinstance(name, str) or not name:
    raise ValueError(f"Dataset name must be a non-empty string. Received: "
                     f"name={name!r}")
  if name == "digits":
    return DigitsSource()
  if name in DEFAULT_IDX_DIRS:
    return IdxSource(name, data_dir)
  if name.startswith(FOLDER_PREFIX):
    root = name[len(FOLDER_PREFIX):]
    if not root:
      raise ValueError(f"Dataset name {name!r} lacks the folder path: use "
                       "'folder:<path>'.")
    if data_dir is not None and os.path.abspath(
        os.fspath(data_dir)) != os.path.abspath(root):
      raise ValueError(f"Dataset name {name!r} and data_dir={data_dir!r} "
                       "name different folders; give the path once.")
    return FolderSource(name, root)
  if name == "image_folder":
    if data_dir is None:
      raise ValueError("name='image_folder' needs data_dir=<root of "
                       "<split>/<class>/<image> folders> (or use "
                       "name='folder:<path>').")
    return FolderSource(name, data_dir)
  return TfdsSource(name, data_dir)
