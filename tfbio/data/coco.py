"""COCO-format object detection data and evaluation (xiao2018 §3.2).

xiao2018 §3.2 trains RetinaNet on COCO trainval35k and reports box / focal
losses; detection accuracy is COCO's mAP. This module reads any COCO-format
directory (real COCO, or ``tools/make_shapes_coco.py``'s synthetic "shapes")
with pycocotools into a ``tf.data`` pipeline, and evaluates detections with
``pycocotools.cocoeval.COCOeval``.

Pipeline elements (dicts; batched when ``batch_size`` is given):

* ``"image"``: float32 ``(S, S, 3)``: the image scaled to [0, 1] (then
  ImageNet mean/std-normalised when ``normalize``), resized keeping its
  aspect ratio so that it fits ``S x S`` (longer side = ``S``), zero-padded
  at the bottom/right;
* ``"boxes"``: float32 ``(max_boxes, 4)``, ``yxyx`` (``[top, left, bottom,
  right]``) in **absolute pixels of that resized image** — the frame of
  ``tfbio.models.retinanet.anchors`` — zero rows past ``num_boxes``;
* ``"classes"``: int32 ``(max_boxes,)``, contiguous 0-based class indices
  (COCO category ids sorted ascending → 0, 1, ...), ``-1`` past
  ``num_boxes``;
* ``"num_boxes"`` int32, ``"image_id"`` int64 (the COCO id),
  ``"scale"`` float32 (resized = original × scale) and ``"original_size"``
  int32 ``(2,)`` ``(height, width)``, to map detections back
  (:func:`detections_to_coco`).

Crowd annotations (``iscrowd=1``) and empty boxes are dropped; images keep
at most ``max_boxes`` objects (a warning counts the truncated ones).

Layouts :func:`resolve` understands: ``DIR/annotations{_split}.json`` +
``DIR/images/`` (make_shapes_coco), COCO's ``DIR/annotations/
instances_{split}.json`` + ``DIR/{split}/`` (e.g. ``split="val2017"``), or an
annotation JSON path directly (images next to it, or in ``images/``).
tensorflow-datasets' ``coco/2017`` is read by :func:`tfds_coco_dataset` when
it is already prepared (never downloaded implicitly: ~25 GB).
"""

import contextlib
import io
import json
import os

from absl import logging
import numpy as np
import tensorflow as tf

from tfbio.data import preprocessing
from tfbio.data import sources
from tfbio.utils import checks

__all__ = ["COCO_2017_CATEGORY_IDS", "STATS_KEYS", "coco_dataset",
           "coco_eval", "coco_info", "detections_to_coco", "resolve",
           "tfds_coco_dataset"]

_AUTOTUNE = tf.data.AUTOTUNE
# The 80 category ids of COCO 2014/2017 detection, in the order of tfds'
# ``coco/2017`` labels 0..79 (ids 12, 26, 29, 30, 45, 66, 68, 69, 71, 83 are
# unused).
COCO_2017_CATEGORY_IDS = tuple(
    i for i in range(1, 91)
    if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83))
# Names of COCOeval.stats, in order.
STATS_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl",
              "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _quiet(fn, *args, **kwargs):
  """Calls a pycocotools function, its prints sent to absl's debug log.

  ("loading annotations into memory...", "Done (t=0.00s)", ...: shown with
  ``--verbosity=1``.)
  """
  buffer = io.StringIO()
  with contextlib.redirect_stdout(buffer):
    result = fn(*args, **kwargs)
  text = buffer.getvalue().strip()
  if text:
    logging.debug("pycocotools:\n%s", text)
  return result


def _load_coco(gt):
  """A ``pycocotools.coco.COCO`` from a path, a dataset dict or a COCO."""
  from pycocotools.coco import COCO  # pylint: disable=g-import-not-at-top

  if isinstance(gt, COCO):
    return gt
  if isinstance(gt, dict):
    coco = COCO()
    coco.dataset = gt
    _quiet(coco.createIndex)
    return coco
  if isinstance(gt, (str, os.PathLike)):
    if not os.path.isfile(gt):
      raise FileNotFoundError(f"No COCO annotation file at {os.fspath(gt)!r}")
    try:
      return _quiet(COCO, os.fspath(gt))
    except (ValueError, KeyError, TypeError, AssertionError) as e:
      # json.JSONDecodeError is a ValueError; pycocotools asserts a dict.
      raise ValueError(f"COCO annotation file {os.fspath(gt)!r} is not valid "
                       f"COCO JSON ({type(e).__name__}: "
                       f"{str(e).splitlines()[0] if str(e) else e!r})"
                       ) from None
  raise ValueError(f"Expected a COCO annotation path, dict or COCO object. "
                   f"Received: {type(gt).__name__}")


def resolve(path, split=None):
  """``(annotation_file, image_dir)`` of a COCO-format dataset.

  Args:
    path: a directory (layouts in the module docstring) or a ``.json``.
    split: split name (``"train"``, ``"val2017"``...); None: the unsplit
      ``annotations.json``.

  Raises:
    FileNotFoundError: nothing matching, with the paths tried.
  """
  path = os.path.abspath(os.path.expanduser(os.fspath(path)))
  if os.path.isfile(path):
    root = os.path.dirname(path)
    images = os.path.join(root, "images")
    return path, images if os.path.isdir(images) else root
  suffix = f"_{split}" if split else ""
  candidates = [(os.path.join(path, f"annotations{suffix}.json"),
                 os.path.join(path, "images"))]
  if split:
    candidates.append((os.path.join(path, "annotations",
                                    f"instances_{split}.json"),
                       os.path.join(path, split)))
  for annotations, images in candidates:
    if os.path.isfile(annotations):
      return annotations, images
  raise FileNotFoundError(
      f"No COCO annotations for split={split!r} under {path!r}; tried "
      f"{[c[0] for c in candidates]}")


def coco_info(path, split=None):
  """Dataset facts without reading images.

  Returns:
    Dict ``num_classes``, ``category_ids`` (sorted; index = class index),
    ``category_names``, ``num_images``, ``num_annotations``,
    ``annotation_file``, ``image_dir``.
  """
  annotation_file, image_dir = resolve(path, split)
  coco = _load_coco(annotation_file)
  cats = sorted(coco.loadCats(coco.getCatIds()), key=lambda c: c["id"])
  return {"num_classes": len(cats),
          "category_ids": [c["id"] for c in cats],
          "category_names": [c["name"] for c in cats],
          "num_images": len(coco.getImgIds()),
          "num_annotations": len(coco.getAnnIds()),
          "annotation_file": annotation_file, "image_dir": image_dir}


def _prepare(image, boxes, classes, image_id, flip_seed, *, image_size,
             max_boxes, augment, normalize):
  """Resize-and-pad one example; see the module docstring for the output.

  ``boxes`` ``(k, 4)`` yxyx absolute pixels of ``image``; ``classes`` ``(k,)``.
  """
  out_h, out_w = image_size
  image = preprocessing.to_float(image)
  shape = tf.shape(image)
  height, width = shape[0], shape[1]
  h_f, w_f = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
  scale = tf.minimum(out_h / h_f, out_w / w_f)
  new_h = tf.clip_by_value(tf.cast(tf.round(h_f * scale), tf.int32), 1, out_h)
  new_w = tf.clip_by_value(tf.cast(tf.round(w_f * scale), tf.int32), 1, out_w)
  image = tf.image.resize(image, tf.stack([new_h, new_w]), method="bilinear",
                          antialias=True)
  boxes = tf.cast(boxes, tf.float32) * scale
  new_hw = tf.cast(tf.stack([new_h, new_w, new_h, new_w]), tf.float32)
  boxes = tf.clip_by_value(boxes, 0.0, new_hw)
  if augment:
    flip = tf.random.stateless_uniform([], flip_seed) < 0.5
    image = tf.cond(flip, lambda: tf.image.flip_left_right(image),
                    lambda: image)
    flipped = tf.stack([boxes[:, 0], new_hw[1] - boxes[:, 3], boxes[:, 2],
                        new_hw[1] - boxes[:, 1]], axis=-1)
    boxes = tf.where(flip, flipped, boxes)
  if normalize:
    image = preprocessing.normalize(image)
  image = tf.image.pad_to_bounding_box(image, 0, 0, out_h, out_w)
  image.set_shape([out_h, out_w, 3])
  keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
  boxes = tf.boolean_mask(boxes, keep)[:max_boxes]
  classes = tf.boolean_mask(tf.cast(classes, tf.int32), keep)[:max_boxes]
  num_boxes = tf.shape(boxes)[0]
  pad = max_boxes - num_boxes
  boxes = tf.pad(boxes, [[0, pad], [0, 0]])
  classes = tf.pad(classes, [[0, pad]], constant_values=-1)
  boxes.set_shape([max_boxes, 4])
  classes.set_shape([max_boxes])
  return {"image": image, "boxes": boxes, "classes": classes,
          "num_boxes": num_boxes, "image_id": tf.cast(image_id, tf.int64),
          "scale": scale,
          "original_size": tf.stack([height, width])}


def _finish(ds, *, image_size, max_boxes, augment, normalize, seed,
            batch_size, drop_remainder):
  """Maps raw ``(image, boxes, classes, image_id)`` through ``_prepare``."""
  base_seed = 0 if seed is None else int(seed)

  def prepare(index, raw):
    image, boxes, classes, image_id = raw
    flip_seed = tf.stack([tf.constant(base_seed, tf.int64), index])
    return _prepare(image, boxes, classes, image_id, flip_seed,
                    image_size=image_size, max_boxes=max_boxes,
                    augment=augment, normalize=normalize)

  ds = ds.enumerate().map(lambda i, raw: prepare(i, raw),
                          num_parallel_calls=_AUTOTUNE, deterministic=True)
  if batch_size is not None:
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
  return ds.prefetch(_AUTOTUNE)


def _check_options(image_size, max_boxes, batch_size):
  size = checks.int_tuple("image_size", image_size, 2)
  checks.positive_int("max_boxes", max_boxes)
  if batch_size is not None:
    checks.positive_int("batch_size", batch_size)
  return size


def coco_dataset(path, split=None, *, image_size=512, max_boxes=100,
                 batch_size=None, shuffle=False, seed=None, repeat=False,
                 augment=False, normalize=True, drop_remainder=False):
  """A ``tf.data`` pipeline over a COCO-format dataset (pycocotools).

  Example:

  >>> ds = coco_dataset("/tmp/shapes", "train", image_size=128,
  ...                   batch_size=8, shuffle=True, seed=0)
  >>> batch = next(iter(ds))
  >>> batch["image"].shape, batch["boxes"].shape
  (TensorShape([8, 128, 128, 3]), TensorShape([8, 100, 4]))

  Args:
    path: dataset directory or annotation file (:func:`resolve`).
    split: split name, or None.
    image_size: output side ``S`` (or ``(height, width)``).
    max_boxes: boxes per image after padding/truncation.
    batch_size: None for unbatched elements.
    shuffle: shuffle the images (every epoch when ``repeat``).
    seed: shuffle and flip seed (deterministic for a seed).
    repeat: repeat forever.
    augment: random horizontal flips (Lin et al. 2017's only augmentation).
    normalize: ImageNet mean/std after scaling to [0, 1] (the ResNet-18
      backbone's ImageNet preprocessing); False keeps [0, 1].
    drop_remainder: drop a last partial batch.

  Returns:
    A ``tf.data.Dataset`` of dicts (module docstring).
  """
  size = _check_options(image_size, max_boxes, batch_size)
  annotation_file, image_dir = resolve(path, split)
  coco = _load_coco(annotation_file)
  category_ids = sorted(coco.getCatIds())
  class_of = {c: i for i, c in enumerate(category_ids)}
  image_ids = sorted(coco.getImgIds())
  if not image_ids:
    raise ValueError(f"No images in {annotation_file!r}")
  paths, ids = [], []
  boxes = np.zeros((len(image_ids), max_boxes, 4), np.float32)
  classes = -np.ones((len(image_ids), max_boxes), np.int32)
  counts = np.zeros((len(image_ids),), np.int32)
  truncated = 0
  for row, image_id in enumerate(image_ids):
    info = coco.loadImgs(image_id)[0]
    paths.append(os.path.join(image_dir, info["file_name"]))
    ids.append(image_id)
    anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=image_id))
            if not a.get("iscrowd", 0) and a["bbox"][2] > 0
            and a["bbox"][3] > 0]
    truncated += max(0, len(anns) - max_boxes)
    for k, ann in enumerate(anns[:max_boxes]):
      x, y, w, h = ann["bbox"]
      boxes[row, k] = (y, x, y + h, x + w)
      classes[row, k] = class_of[ann["category_id"]]
    counts[row] = min(len(anns), max_boxes)
  if truncated:
    logging.log_first_n(logging.WARNING, "coco_dataset: %d boxes beyond "
                        "max_boxes=%d dropped.", 1, truncated, max_boxes)
  sources.info_once(("coco", annotation_file),
                    "coco_dataset: %d images, %d classes from %s.",
                    len(paths), len(category_ids), annotation_file)
  ds = tf.data.Dataset.from_tensor_slices(
      (paths, boxes, classes, counts, np.asarray(ids, np.int64)))
  if shuffle:
    ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
  if repeat:
    ds = ds.repeat()

  def load(file_path, b, c, n, image_id):
    image = sources.read_image(file_path)
    return image, b[:n], c[:n], image_id

  ds = ds.map(load, num_parallel_calls=_AUTOTUNE, deterministic=True)
  return _finish(ds, image_size=size, max_boxes=max_boxes, augment=augment,
                 normalize=normalize, seed=seed, batch_size=batch_size,
                 drop_remainder=drop_remainder)


def tfds_coco_dataset(split, *, data_dir=None, name="coco/2017",
                      image_size=512, max_boxes=100, batch_size=None,
                      shuffle=False, seed=None, repeat=False, augment=False,
                      normalize=True, drop_remainder=False,
                      shuffle_buffer=1000):
  """:func:`coco_dataset`'s pipeline over a *prepared* tfds ``coco/2017``.

  Same element dicts; classes are tfds' labels 0..79 (category ids
  :data:`COCO_2017_CATEGORY_IDS`). For :func:`coco_eval` use COCO's own
  ``instances_{split}2017.json``.

  Raises:
    FileNotFoundError: the dataset is not prepared under ``data_dir`` (it is
      never downloaded here).
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  size = _check_options(image_size, max_boxes, batch_size)
  builder = tfds.builder(name, data_dir=data_dir)
  if not builder.is_prepared():
    raise FileNotFoundError(
        f"tfds dataset {name!r} is not prepared in {builder.data_dir}; it is "
        "~25 GB and never downloaded implicitly: run `tfds build "
        f"{name}` with --data_dir on a machine with internet, or use "
        "coco_dataset() on a COCO-format directory.")
  ds = builder.as_dataset(split=split, shuffle_files=shuffle,
                          read_config=tfds.ReadConfig(shuffle_seed=seed))
  if shuffle:
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  if repeat:
    ds = ds.repeat()

  def raw(example):
    image = example["image"]
    shape = tf.cast(tf.shape(image), tf.float32)
    objects = example["objects"]
    keep = ~tf.cast(objects["is_crowd"], tf.bool)
    boxes = tf.boolean_mask(objects["bbox"], keep) * tf.stack(
        [shape[0], shape[1], shape[0], shape[1]])
    classes = tf.boolean_mask(objects["label"], keep)
    return image, boxes, classes, example["image/id"]

  ds = ds.map(raw, num_parallel_calls=_AUTOTUNE, deterministic=True)
  return _finish(ds, image_size=size, max_boxes=max_boxes, augment=augment,
                 normalize=normalize, seed=seed, batch_size=batch_size,
                 drop_remainder=drop_remainder)


def detections_to_coco(detections, image_ids, scales, category_ids):
  """COCO result dicts from batched detections in the resized-image frame.

  Args:
    detections: dict ``boxes`` ``(B, D, 4)`` yxyx, ``scores`` ``(B, D)``,
      ``classes`` ``(B, D)`` (0-based), ``num_detections`` ``(B,)``, as
      ``tfbio.models.retinanet.decode.decode_detections`` returns.
    image_ids: ``(B,)`` COCO image ids (the pipeline's ``image_id``).
    scales: ``(B,)`` the pipeline's ``scale``: boxes are divided by it.
    category_ids: class index → COCO category id (``coco_info``'s).

  Returns:
    List of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``.
  """
  boxes = np.asarray(detections["boxes"], np.float64)
  scores = np.asarray(detections["scores"], np.float64)
  classes = np.asarray(detections["classes"]).astype(np.int64)
  counts = np.asarray(detections["num_detections"]).astype(np.int64)
  image_ids = np.asarray(image_ids).reshape(-1)
  scales = np.asarray(scales, np.float64).reshape(-1)
  results = []
  for b in range(boxes.shape[0]):
    for d in range(int(counts[b])):
      y0, x0, y1, x1 = boxes[b, d] / scales[b]
      results.append({"image_id": int(image_ids[b]),
                      "category_id": int(category_ids[classes[b, d]]),
                      "bbox": [float(x0), float(y0), float(x1 - x0),
                               float(y1 - y0)],
                      "score": float(scores[b, d])})
  return results


def coco_eval(gt_json, detections, *, image_ids=None):
  """COCO box mAP of ``detections`` (``pycocotools.cocoeval.COCOeval``).

  Args:
    gt_json: ground truth: annotation file path, COCO dataset dict, or a
      ``pycocotools.coco.COCO``.
    detections: COCO results: a list of ``{"image_id", "category_id",
      "bbox": [x, y, w, h], "score"}`` (not modified), a results JSON path,
      or an ``(n, 7)`` array ``[image_id, x, y, w, h, score, category_id]``.
    image_ids: evaluate on these images only (default: all of the ground
      truth).

  Returns:
    Dict of floats keyed :data:`STATS_KEYS`: ``"AP"`` (mAP@[.5:.95]),
    ``"AP50"``, ``"AP75"``, ``"APs"``, ``"APm"``, ``"APl"`` and the recalls;
    COCOeval's ``-1`` where no ground truth falls in a size range. All 0
    when there is no detection.
  """
  from pycocotools import cocoeval  # pylint: disable=g-import-not-at-top

  gt = _load_coco(gt_json)
  if isinstance(detections, (str, os.PathLike)):
    with open(detections, encoding="utf-8") as f:
      detections = json.load(f)
  if isinstance(detections, np.ndarray):
    if detections.ndim != 2 or detections.shape[1] != 7:
      raise ValueError(f"detections array must be (n, 7). Received: "
                       f"shape={detections.shape}")
    empty = detections.shape[0] == 0
  else:
    detections = [dict(d) for d in detections]  # loadRes adds keys.
    empty = not detections
  if empty:
    logging.warning("coco_eval: no detections; every metric is 0.")
    return {k: 0.0 for k in STATS_KEYS}
  dt = _quiet(gt.loadRes, detections)
  evaluator = cocoeval.COCOeval(gt, dt, iouType="bbox")
  if image_ids is not None:
    evaluator.params.imgIds = sorted(int(i) for i in image_ids)
  _quiet(evaluator.evaluate)
  _quiet(evaluator.accumulate)
  _quiet(evaluator.summarize)
  return {k: float(v) for k, v in zip(STATS_KEYS, evaluator.stats)}
