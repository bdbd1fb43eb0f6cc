"""Tests of tfbio.data: offline sources, preprocessing, batching, errors.

Never touches the network: the tfds tests replace the connectivity check.
"""

import gzip
import os
import time

import numpy as np
import pytest
import tensorflow as tf

import tfbio.data as data
from tfbio.data import idx as idx_lib
from tfbio.data import preprocessing
from tfbio.data import sources


def _collect(ds):
  xs, ys = [], []
  for x, y in ds:
    xs.append(x.numpy())
    ys.append(y.numpy())
  return np.concatenate(xs), np.concatenate(ys)


# --------------------------------------------------------------------------
# names / digits


def test_names_and_digits_info():
  assert data.names() == ["digits", "fashion_mnist_idx", "image_folder",
                          "mnist_idx"]
  info = data.dataset_info("digits")
  assert info["num_classes"] == 10
  assert info["input_shape"] == (8, 8, 1)
  assert info["num_examples"] == {"train": 1347, "test": 450}
  assert sum(info["num_examples"].values()) == 1797
  assert data.dataset_info("digits", image_size=16)["input_shape"] == (
      16, 16, 1)


def test_digits_batches_shapes_dtypes_ranges():
  ds = data.get_dataset("digits", "train", batch_size=32)
  x, y = next(iter(ds))
  assert x.shape == (32, 8, 8, 1) and x.dtype == tf.float32
  assert y.shape == (32,) and y.dtype == tf.int32
  assert 0.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1.0
  assert ds.element_spec[0].shape.as_list() == [None, 8, 8, 1]
  xs, ys = _collect(ds)
  assert len(xs) == 1347
  assert set(ys.tolist()) == set(range(10))
  # Pixels are multiples of 1/16.
  np.testing.assert_allclose(xs * 16, np.round(xs * 16), atol=1e-5)
  x, _ = next(iter(data.get_dataset("digits", "test", batch_size=4,
                                    image_size=(12, 10))))
  assert x.shape == (4, 12, 10, 1)


def test_digits_splits_partition_the_data():
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  digits = datasets.load_digits()
  _, train_y = _collect(data.get_dataset("digits", "train", batch_size=500,
                                         shuffle=False))
  test_x, test_y = _collect(data.get_dataset("digits", "test", batch_size=500,
                                             shuffle=False))
  assert len(train_y) + len(test_y) == 1797
  np.testing.assert_array_equal(
      np.bincount(np.concatenate([train_y, test_y]), minlength=10),
      np.bincount(digits.target, minlength=10))
  order = np.random.RandomState(0).permutation(1797)
  np.testing.assert_allclose(test_x[..., 0],
                             digits.images[order[1347:]] / 16.0, atol=1e-6)


def test_digits_seed_determinism_and_shuffle():
  def first(seed, shuffle=True):
    ds = data.get_dataset("digits", "train", batch_size=64, seed=seed,
                          shuffle=shuffle)
    x, y = next(iter(ds))
    return x.numpy(), y.numpy()

  x0, y0 = first(0)
  tf.random.set_seed(99)  # The global seed does not matter.
  x1, y1 = first(0)
  np.testing.assert_array_equal(x0, x1)
  np.testing.assert_array_equal(y0, y1)
  x2, _ = first(1)
  assert not np.array_equal(x0, x2)
  x3, _ = first(0, shuffle=False)
  assert not np.array_equal(x0, x3)
  np.testing.assert_array_equal(first(5, shuffle=False)[0], x3)


def test_digits_batch_size_and_drop_remainder():
  sizes = [len(y) for _, y in data.get_dataset("digits", "train",
                                                batch_size=32)]
  assert sizes == [32] * 42 + [3]
  ds = data.get_dataset("digits", "train", batch_size=32, drop_remainder=True)
  assert [len(y) for _, y in ds] == [32] * 42
  assert int(ds.cardinality()) == 42
  assert ds.element_spec[0].shape.as_list() == [32, 8, 8, 1]
  ds = data.get_dataset("digits", "train", batch_size=32, repeat=True)
  assert int(ds.cardinality()) == tf.data.INFINITE_CARDINALITY


def test_digits_repeat_gives_a_new_permutation_each_epoch():
  ds = data.get_dataset("digits", "test", batch_size=450, repeat=True)
  it = iter(ds)
  epochs = [next(it) for _ in range(3)]
  counts = np.bincount(epochs[0][1].numpy(), minlength=10)
  for x, y in epochs:
    assert x.shape[0] == 450
    np.testing.assert_array_equal(np.bincount(y.numpy(), minlength=10),
                                  counts)
  assert not np.array_equal(epochs[0][1].numpy(), epochs[1][1].numpy())


def test_bad_arguments_raise_value_error():
  for kwargs, match in [
      (dict(batch_size=0), "batch_size"),
      (dict(batch_size=2.5), "batch_size"),
      (dict(batch_size=True), "batch_size"),
      (dict(batch_size=8, preprocess="bogus"), "'bogus'"),
      (dict(batch_size=8, image_size=(8,)), "image_size"),
      (dict(batch_size=8, image_size=-1), "image_size"),
      (dict(batch_size=8, seed="x"), "seed"),
      (dict(batch_size=8, split="validation"), "'validation'"),
  ]:
    split = kwargs.pop("split", "train")
    with pytest.raises(ValueError, match=match):
      data.get_dataset("digits", split, **kwargs)


# --------------------------------------------------------------------------
# IDX


def _idx_bytes(array, magic):
  header = magic.to_bytes(4, "big") + b"".join(
      int(d).to_bytes(4, "big") for d in array.shape)
  return header + array.astype(">u1").tobytes()


def _write_idx(path, array, magic, gz):
  payload = _idx_bytes(array, magic)
  if gz:
    payload = gzip.compress(payload)
  with open(path, "wb") as f:
    f.write(payload)


def _make_idx_dir(directory, gz=True, sizes=(("train", 5), ("t10k", 3)),
                  seed=0):
  rng = np.random.RandomState(seed)
  arrays = {}
  os.makedirs(directory, exist_ok=True)
  suffix = ".gz" if gz else ""
  for prefix, n in sizes:
    images = rng.randint(0, 256, size=(n, 28, 28)).astype(np.uint8)
    labels = rng.randint(0, 10, size=n).astype(np.uint8)
    _write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte{suffix}"),
               images, idx_lib.IMAGES_MAGIC, gz)
    _write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte{suffix}"),
               labels, idx_lib.LABELS_MAGIC, gz)
    arrays[prefix] = (images, labels)
  return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
  arrays = _make_idx_dir(str(tmp_path), gz=gz)
  info = data.dataset_info("fashion_mnist_idx", data_dir=str(tmp_path))
  assert info["num_examples"] == {"train": 5, "test": 3}
  assert info["input_shape"] == (28, 28, 1)
  assert info["num_classes"] == 10
  assert info["source"] == f"idx:{tmp_path}"
  suffix = ".gz" if gz else ""
  assert idx_lib.read_idx_header(
      str(tmp_path / f"train-images-idx3-ubyte{suffix}"),
      idx_lib.IMAGES_MAGIC) == (0x803, np.dtype(">u1"), (5, 28, 28))
  for split, prefix in (("train", "train"), ("test", "t10k")):
    x, y = _collect(data.get_dataset("mnist_idx", split, batch_size=2,
                                     data_dir=tmp_path, shuffle=False))
    images, labels = arrays[prefix]
    assert x.dtype == np.float32 and x.shape == images.shape + (1,)
    np.testing.assert_array_equal(np.round(x[..., 0] * 255).astype(np.uint8),
                                  images)
    np.testing.assert_array_equal(y, labels.astype(np.int32))


def test_idx_shuffled_is_a_permutation(tmp_path):
  arrays = _make_idx_dir(str(tmp_path), sizes=(("train", 20), ("t10k", 1)))
  x, _ = _collect(data.get_dataset("mnist_idx", "train", batch_size=7,
                                   data_dir=tmp_path, seed=3))
  images = arrays["train"][0]
  got = np.round(x[..., 0] * 255).astype(np.uint8)
  assert not np.array_equal(got, images)
  np.testing.assert_array_equal(np.sort(got.reshape(20, -1), axis=0),
                                np.sort(images.reshape(20, -1), axis=0))


def test_idx_corrupted_magic(tmp_path):
  _make_idx_dir(str(tmp_path), gz=False)
  path = tmp_path / "train-images-idx3-ubyte"
  raw = bytearray(path.read_bytes())
  raw[3] = 0x01  # Images file with the labels' magic.
  path.write_bytes(bytes(raw))
  with pytest.raises(ValueError, match="magic") as e:
    list(data.get_dataset("mnist_idx", "train", batch_size=2,
                          data_dir=tmp_path))
  assert str(path) in str(e.value)
  raw[:2] = b"\x12\x34"  # Not IDX at all.
  path.write_bytes(bytes(raw))
  with pytest.raises(ValueError, match="not an IDX file"):
    data.dataset_info("mnist_idx", data_dir=tmp_path)


def test_idx_truncated_file(tmp_path):
  _make_idx_dir(str(tmp_path), gz=False)
  path = tmp_path / "t10k-images-idx3-ubyte"
  path.write_bytes(path.read_bytes()[:-10])
  with pytest.raises(ValueError, match="truncated"):
    data.get_dataset("mnist_idx", "test", batch_size=2, data_dir=tmp_path)


def test_idx_missing_directory(tmp_path):
  missing = tmp_path / "nowhere"
  with pytest.raises(FileNotFoundError) as e:
    data.get_dataset("fashion_mnist_idx", "train", batch_size=2,
                     data_dir=missing)
  assert str(missing) in str(e.value)
  assert "dataset-fashion-mnist" in str(e.value)
  with pytest.raises(FileNotFoundError, match="nowhere"):
    data.dataset_info("mnist_idx", data_dir=missing)


def test_idx_incomplete_directory(tmp_path):
  _make_idx_dir(str(tmp_path), sizes=(("train", 2),))
  data.get_dataset("mnist_idx", "train", batch_size=2, data_dir=tmp_path)
  with pytest.raises(FileNotFoundError) as e:
    data.get_dataset("mnist_idx", "test", batch_size=2, data_dir=tmp_path)
  assert str(tmp_path) in str(e.value)
  assert "t10k-images-idx3-ubyte.gz" in str(e.value)


@pytest.mark.skipif(
    not os.path.isdir(sources.DEFAULT_IDX_DIRS["fashion_mnist_idx"]),
    reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist_info():
  info = data.dataset_info("fashion_mnist_idx")
  assert info["num_examples"] == {"train": 60000, "test": 10000}
  assert info["input_shape"] == (28, 28, 1)


# --------------------------------------------------------------------------
# Image folders


def _make_folder(root, sizes=((20, 30), (24, 24), (31, 17))):
  for split in ("train", "val"):
    for label, class_name in enumerate(("cat", "dog")):
      class_dir = os.path.join(root, split, class_name)
      os.makedirs(class_dir)
      for i, (h, w) in enumerate(sizes):
        value = 40 + 100 * label + i
        image = tf.fill([h, w, 3], tf.constant(value, tf.uint8))
        tf.io.write_file(os.path.join(class_dir, f"{i}.png"),
                         tf.io.encode_png(image))


def test_folder_labels_and_sizes(tmp_path):
  _make_folder(str(tmp_path))
  info = data.dataset_info(f"folder:{tmp_path}")
  assert info["num_classes"] == 2
  assert info["num_examples"] == {"train": 6, "val": 6}
  assert info["input_shape"] == (None, None, 3)
  assert data.dataset_info("image_folder", data_dir=tmp_path,
                           image_size=16)["input_shape"] == (16, 16, 3)
  x, y = _collect(data.get_dataset(f"folder:{tmp_path}", "train",
                                   batch_size=4, image_size=16,
                                   shuffle=False))
  assert x.shape == (6, 16, 16, 3) and x.dtype == np.float32
  assert int(data.get_dataset(f"folder:{tmp_path}", "train", batch_size=4,
                              image_size=16).cardinality()) == 2
  np.testing.assert_array_equal(y, [0, 0, 0, 1, 1, 1])
  expected = (40 + 100 * y + np.array([0, 1, 2, 0, 1, 2])) / 255.0
  np.testing.assert_allclose(x.mean(axis=(1, 2, 3)), expected, atol=1e-5)
  _, y = _collect(data.get_dataset("image_folder", "val", batch_size=6,
                                   data_dir=tmp_path, image_size=8, seed=1))
  assert sorted(y.tolist()) == [0, 0, 0, 1, 1, 1]


def test_folder_errors(tmp_path):
  missing = tmp_path / "imagenet"
  with pytest.raises(FileNotFoundError) as e:
    data.get_dataset(f"folder:{missing}", "train", batch_size=2,
                     image_size=8)
  assert str(missing) in str(e.value)
  _make_folder(str(tmp_path / "ok"))
  with pytest.raises(ValueError, match="image_size"):
    data.get_dataset(f"folder:{tmp_path / 'ok'}", "train", batch_size=2)
  with pytest.raises(ValueError, match="'test'"):
    data.get_dataset(f"folder:{tmp_path / 'ok'}", "test", batch_size=2,
                     image_size=8)
  with pytest.raises(ValueError, match="data_dir"):
    data.get_dataset("image_folder", "train", batch_size=2, image_size=8)
  os.makedirs(tmp_path / "empty" / "train" / "a")
  with pytest.raises(FileNotFoundError, match="No images"):
    data.get_dataset(f"folder:{tmp_path / 'empty'}", "train", batch_size=2,
                     image_size=8)


def test_folder_imagenet_preprocess(tmp_path):
  _make_folder(str(tmp_path))
  for preprocess in ("imagenet_train", "imagenet_eval"):
    ds = data.get_dataset(f"folder:{tmp_path}", "train", batch_size=3,
                          image_size=20, preprocess=preprocess)
    x, y = next(iter(ds))
    assert x.shape == (3, 20, 20, 3)
    assert ds.element_spec[0].shape.as_list() == [None, 20, 20, 3]


# --------------------------------------------------------------------------
# tensorflow-datasets


def test_tfds_offline_raises_quickly(tmp_path, monkeypatch):
  monkeypatch.setattr(sources, "internet_available", lambda *a, **k: False)
  start = time.monotonic()
  with pytest.raises(FileNotFoundError) as e:
    data.get_dataset("mnist", "train", batch_size=8, data_dir=tmp_path)
  assert time.monotonic() - start < 10
  message = str(e.value)
  assert str(tmp_path) in message
  assert "tfds build mnist" in message and "\n" not in message
  with pytest.raises(FileNotFoundError, match=str(tmp_path)):
    data.dataset_info("mnist", data_dir=tmp_path)
  with pytest.raises(ValueError, match="'no_such_dataset_xyz'") as e:
    data.get_dataset("no_such_dataset_xyz", "train", batch_size=8,
                     data_dir=tmp_path)
  assert "\n" not in str(e.value)


def test_tfds_mock_data(tmp_path, monkeypatch):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  # Under mock_data the data is never "prepared"; say the network is up so
  # the (mocked, no-op) download_and_prepare is called instead of raising.
  monkeypatch.setattr(sources, "internet_available", lambda *a, **k: True)
  with tfds.testing.mock_data(num_examples=10):
    ds = data.get_dataset("mnist", "train", batch_size=4, data_dir=tmp_path,
                          preprocess="cifar_augment")
    x, y = _collect(ds)
    info = data.dataset_info("mnist", data_dir=tmp_path)
  assert x.shape == (10, 28, 28, 1) and x.dtype == np.float32
  assert y.dtype == np.int32 and set(y.tolist()) <= set(range(10))
  assert 0.0 <= x.min() and x.max() <= 1.0
  assert info["num_classes"] == 10 and info["input_shape"] == (28, 28, 1)


def test_internet_check_is_bounded():
  start = time.monotonic()
  # A non-routable address: fails or times out within the limit.
  sources.internet_available("10.255.255.1", 9, timeout=0.5)
  assert time.monotonic() - start < 2


# --------------------------------------------------------------------------
# Preprocessing


def test_cifar_augment_shape_and_determinism():
  def batch(seed, split="train", preprocess="cifar_augment"):
    ds = data.get_dataset("digits", split, batch_size=64, seed=seed,
                          preprocess=preprocess)
    return next(iter(ds))[0].numpy()

  a = batch(0)
  assert a.shape == (64, 8, 8, 1)
  np.testing.assert_array_equal(a, batch(0))
  assert not np.array_equal(a, batch(1))
  plain = batch(0, preprocess="none")
  assert not np.array_equal(a, plain)
  # Evaluation: identity.
  np.testing.assert_array_equal(batch(0, "test"),
                                batch(0, "test", preprocess="none"))


def _is_pad_crop_flip(out, image, pad):
  padded = np.pad(image, [(pad, pad), (pad, pad), (0, 0)])
  h, w = image.shape[:2]
  for dy in range(2 * pad + 1):
    for dx in range(2 * pad + 1):
      crop = padded[dy:dy + h, dx:dx + w]
      if np.array_equal(out, crop) or np.array_equal(out, crop[:, ::-1]):
        return True
  return False


def test_pad_crop_flip_is_a_padded_crop():
  images = np.random.RandomState(0).rand(16, 6, 5, 2).astype(np.float32)
  seed = tf.constant([3, 4], tf.int64)
  out = preprocessing.pad_crop_flip_batch(tf.constant(images), seed,
                                          pad=2).numpy()
  assert out.shape == images.shape
  for o, i in zip(out, images):
    assert _is_pad_crop_flip(o, i, 2)
  single = preprocessing.pad_crop_flip(tf.constant(images[0]), seed,
                                       pad=2).numpy()
  assert _is_pad_crop_flip(single, images[0], 2)


def test_imagenet_preprocessing_sizes_and_normalisation():
  image = tf.random.stateless_uniform([60, 90, 3], [1, 2], maxval=256,
                                      dtype=tf.int32)
  image = tf.cast(image, tf.uint8)
  seed = tf.constant([0, 7], tf.int64)
  mean = np.array(preprocessing.IMAGENET_MEAN)
  std = np.array(preprocessing.IMAGENET_STD)
  low, high = (0 - mean) / std, (1 - mean) / std
  for name in ("imagenet_train", "imagenet_eval"):
    fn = preprocessing.make_fn(name, training=True, image_size=32)
    out = fn(image, seed).numpy()
    assert out.shape == (32, 32, 3) and out.dtype == np.float32
    assert np.all(out >= low - 1e-4) and np.all(out <= high + 1e-4)
    np.testing.assert_array_equal(out, fn(image, seed).numpy())
  default = preprocessing.make_fn("imagenet_eval", training=False)
  assert default(image, seed).shape == (224, 224, 3)
  grey = tf.fill([50, 70, 3], 0.5)
  out = preprocessing.make_fn("imagenet", training=False,
                              image_size=16)(grey, seed).numpy()
  expected = (0.5 - np.array(preprocessing.IMAGENET_MEAN)) / np.array(
      preprocessing.IMAGENET_STD)
  np.testing.assert_allclose(out, np.broadcast_to(expected, out.shape),
                             atol=1e-5)


def test_imagenet_eval_center_crop():
  # 56 x 84 -> shorter side 64 (= 56 * 256 / 224) -> 64 x 96 -> center 56.
  columns = tf.tile(tf.range(84, dtype=tf.float32)[None, :, None] / 84,
                    [56, 1, 3])
  out = preprocessing.resize_center_crop(columns, (56, 56)).numpy()
  assert out.shape == (56, 56, 3)
  # The crop is centred: column means are symmetric about 0.5.
  profile = out[0, :, 0]
  np.testing.assert_allclose(profile[0] + profile[-1], 2 * profile.mean(),
                             atol=2e-2)
  np.testing.assert_allclose(profile.mean(), 0.5 - 0.5 / 84, atol=2e-2)


def test_random_resized_crop_varies_with_seed():
  image = tf.reshape(tf.range(40 * 40 * 3, dtype=tf.float32), [40, 40, 3])
  a = preprocessing.random_resized_crop(image, (10, 10), tf.constant([0, 1]))
  b = preprocessing.random_resized_crop(image, (10, 10), tf.constant([0, 1]))
  c = preprocessing.random_resized_crop(image, (10, 10), tf.constant([0, 2]))
  np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert not np.array_equal(a.numpy(), c.numpy())


def test_imagenet_preprocess_needs_rgb():
  with pytest.raises(ValueError, match="3 RGB channels"):
    data.get_dataset("digits", "train", batch_size=4,
                     preprocess="imagenet_train")


def test_unknown_preprocess_name():
  with pytest.raises(ValueError, match="'standardize'"):
    preprocessing.make_fn("standardize", training=True)


def test_dataset_normalize_preprocess():
  """"fashion_mnist_normalize": resize, then biotorch's (x - 0.2859) / 0.3530,
  identical per image and per batch, in training and evaluation."""
  images = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1),
                                             dtype=np.uint8)
  seed = tf.constant([1, 2], tf.int64)
  for training in (True, False):
    one = preprocessing.make_fn("fashion_mnist_normalize", training=training,
                                image_size=32)
    many = preprocessing.make_fn("fashion_mnist_normalize", training=training,
                                 image_size=32, batched=True)
    plain = preprocessing.make_fn("none", training=training, image_size=32)
    got = one(tf.constant(images[0]), seed).numpy()
    assert got.shape == (32, 32, 1)
    np.testing.assert_allclose(
        got, (plain(tf.constant(images[0]), seed).numpy() - 0.2859) / 0.3530,
        rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(many(tf.constant(images), seed).numpy()[0],
                               got, rtol=1e-5, atol=1e-6)


def test_sliced_splits_of_array_sources():
  """'train[:n]' / 'train[n:]' split one split into two disjoint parts (the
  55k / 5k train / validation protocol), with sizes from split_size."""
  assert sources.parse_split("train[:100]") == ("train", slice(None, 100))
  assert sources.parse_split("train[-20:]") == ("train", slice(-20, None))
  assert sources.parse_split("test") == ("test", None)
  info = data.dataset_info("digits")
  n = info["num_examples"]["train"]
  assert sources.split_size(info["num_examples"], "train[:100]") == 100
  assert sources.split_size(info["num_examples"], "train[100:]") == n - 100
  assert sources.split_size(info["num_examples"], "nope[:3]") is None
  def labels(split):
    ds = data.get_dataset("digits", split, batch_size=1000,
                                shuffle=False, repeat=False)
    return np.concatenate([y.numpy() for _, y in ds])
  whole = labels("train")
  np.testing.assert_array_equal(labels("train[:100]"), whole[:100])
  np.testing.assert_array_equal(labels("train[100:]"), whole[100:])
  with pytest.raises(ValueError, match="'bogus\\[:3\\]'"):
    labels("bogus[:3]")
