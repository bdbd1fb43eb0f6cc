#!/usr/bin/env python3
r"""Writes "shapes", a small synthetic COCO-format object-detection dataset.

Coloured rectangles, ellipses and triangles (3 categories) on noisy
backgrounds, 1-4 objects per image (overlapping by IoU <= 0.3), for smoke
runs of the RetinaNet of xiao2018 §3.2 (``tfbio.models.retinanet_resnet18``)
without COCO. Fully deterministic for a given ``--seed`` and ``--split``.

    .venv/bin/python tools/make_shapes_coco.py --out=/tmp/shapes \
        --num_images=200 --image_size=128
    # Two splits in one directory (different images for the same seed):
    .venv/bin/python tools/make_shapes_coco.py --out=/tmp/shapes \
        --split=train --num_images=800
    .venv/bin/python tools/make_shapes_coco.py --out=/tmp/shapes \
        --split=val --num_images=200

Layout (what ``tfbio.data.coco.coco_dataset(DIR, split)`` reads):

    DIR/images/{split}_{id:06d}.png   (no prefix without --split)
    DIR/annotations_{split}.json      (DIR/annotations.json without --split)

Annotations are COCO's: ``images`` (``id`` from 1, ``file_name`` relative to
``DIR/images``, ``width``, ``height``), ``annotations`` (``bbox`` ``[x, y,
w, h]`` the tight pixel box of the shape, ``area`` its pixel count,
``iscrowd`` 0, ``category_id``), ``categories`` (1 rectangle, 2 ellipse,
3 triangle; supercategory "shape").
"""

import json
import os
import zlib

from absl import app
from absl import flags
from absl import logging
import numpy as np

CATEGORIES = (
    {"id": 1, "name": "rectangle", "supercategory": "shape"},
    {"id": 2, "name": "ellipse", "supercategory": "shape"},
    {"id": 3, "name": "triangle", "supercategory": "shape"},
)
MAX_IOU = 0.3
MIN_AREA = 16


def _box_iou(a, b):
  """IoU of two ``[x0, y0, x1, y1]`` (exclusive) boxes."""
  iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
  ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
  inter = iw * ih
  union = ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
           - inter)
  return inter / union if union > 0 else 0.0


def _shape_mask(rng, category, size, x0, y0, w, h):
  """Boolean ``(size, size)`` mask of a shape in ``[x0, x0+w) × [y0, y0+h)``."""
  yy, xx = np.mgrid[0:size, 0:size] + 0.5  # pixel centres
  if category == 1:
    return (xx >= x0) & (xx < x0 + w) & (yy >= y0) & (yy < y0 + h)
  if category == 2:
    cx, cy = x0 + w / 2, y0 + h / 2
    return ((xx - cx) / (w / 2))**2 + ((yy - cy) / (h / 2))**2 <= 1.0
  apex_x = x0 + rng.uniform(0.2, 0.8) * w
  if rng.random() < 0.5:  # apex up
    pts = [(apex_x, y0), (x0, y0 + h), (x0 + w, y0 + h)]
  else:  # apex down
    pts = [(apex_x, y0 + h), (x0, y0), (x0 + w, y0)]
  (x1, y1), (x2, y2), (x3, y3) = pts
  orientation = np.sign((x2 - x1) * (y3 - y1) - (y2 - y1) * (x3 - x1))
  inside = np.ones_like(xx, dtype=bool)
  for (ax, ay), (bx, by) in zip(pts, pts[1:] + pts[:1]):
    inside &= ((bx - ax) * (yy - ay) - (by - ay) * (xx - ax)) * orientation >= 0
  return inside


def render_image(rng, image_size, min_objects=1, max_objects=4):
  """One image and its objects.

  Args:
    rng: a ``numpy.random.Generator``.
    image_size: side of the square image.
    min_objects, max_objects: objects per image (uniform).

  Returns:
    ``(image uint8 (S, S, 3), [(category_id, [x, y, w, h], area)])``.
  """
  size = image_size
  background = rng.uniform(0, 255, 3)
  image = background + rng.normal(0.0, 20.0, (size, size, 3))
  # A smooth gradient so the background is not flat.
  ramp = np.linspace(-1.0, 1.0, size)
  direction = rng.normal(0.0, 25.0, 3)
  image += (ramp[:, None, None] * direction if rng.random() < 0.5
            else ramp[None, :, None] * direction)
  objects, boxes = [], []
  target = int(rng.integers(min_objects, max_objects + 1))
  for _ in range(50 * target):
    if len(objects) == target:
      break
    category = int(rng.integers(1, len(CATEGORIES) + 1))
    w = rng.uniform(0.15, 0.5) * size
    h = rng.uniform(0.15, 0.5) * size
    x0 = rng.uniform(0, size - w)
    y0 = rng.uniform(0, size - h)
    mask = _shape_mask(rng, category, size, x0, y0, w, h)
    area = int(mask.sum())
    if area < MIN_AREA:
      continue
    ys, xs = np.nonzero(mask)
    box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
    if any(_box_iou(box, other) > MAX_IOU for other in boxes):
      continue
    colour = rng.uniform(0, 255, 3)
    while np.abs(colour - background).max() < 100:
      colour = rng.uniform(0, 255, 3)
    image[mask] = colour + rng.normal(0.0, 10.0, (area, 3))
    boxes.append(box)
    objects.append((category, [float(box[0]), float(box[1]),
                               float(box[2] - box[0]),
                               float(box[3] - box[1])], float(area)))
  return np.clip(np.round(image), 0, 255).astype(np.uint8), objects


def make_dataset(out, num_images, image_size=128, seed=0, split=None,
                 min_objects=1, max_objects=4):
  """Writes the images and the annotation JSON; returns the JSON's path.

  Args:
    out: output directory (created).
    num_images: number of images.
    image_size: side of the square images in pixels.
    seed: random seed; together with ``split`` it fixes every pixel.
    split: None/"" (``annotations.json``) or a name such as ``"train"``
      (``annotations_train.json``, images prefixed ``train_``).
    min_objects, max_objects: objects per image.

  Returns:
    Path of the annotation file.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top

  if not isinstance(num_images, int) or num_images < 1:
    raise ValueError(f"num_images must be a positive int. Received: "
                     f"num_images={num_images!r}")
  if not isinstance(image_size, int) or image_size < 16:
    raise ValueError(f"image_size must be an int >= 16. Received: "
                     f"image_size={image_size!r}")
  if not 1 <= min_objects <= max_objects:
    raise ValueError(f"Need 1 <= min_objects <= max_objects. Received: "
                     f"min_objects={min_objects!r}, "
                     f"max_objects={max_objects!r}")
  split = split or ""
  if split and not split.replace("-", "").replace("_", "").isalnum():
    raise ValueError(f"split must be alphanumeric. Received: split={split!r}")
  rng = np.random.default_rng([seed, zlib.crc32(split.encode())])
  image_dir = os.path.join(out, "images")
  os.makedirs(image_dir, exist_ok=True)
  prefix = f"{split}_" if split else ""
  images, annotations = [], []
  for image_id in range(1, num_images + 1):
    pixels, objects = render_image(rng, image_size, min_objects, max_objects)
    file_name = f"{prefix}{image_id:06d}.png"
    Image.fromarray(pixels).save(os.path.join(image_dir, file_name))
    images.append({"id": image_id, "file_name": file_name,
                   "width": image_size, "height": image_size})
    for category, bbox, area in objects:
      annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                          "category_id": category, "bbox": bbox,
                          "area": area, "iscrowd": 0})
  dataset = {
      "info": {"description": "tfbio shapes: synthetic detection dataset "
                              "(tools/make_shapes_coco.py)",
               "version": "1.0", "seed": seed, "split": split},
      "licenses": [],
      "images": images,
      "annotations": annotations,
      "categories": [dict(c) for c in CATEGORIES],
  }
  path = os.path.join(out, f"annotations_{split}.json" if split
                      else "annotations.json")
  with open(path, "w", encoding="utf-8") as f:
    json.dump(dataset, f)
  logging.info("Wrote %d images, %d objects: %s", len(images),
               len(annotations), path)
  return path


FLAGS = flags.FLAGS
flags.DEFINE_string("out", None, "Output directory.")
flags.DEFINE_integer("num_images", 200, "Number of images.")
flags.DEFINE_integer("image_size", 128, "Image side in pixels.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_string("split", "", "Split name (e.g. train, val): writes "
                    "annotations_{split}.json and {split}_*.png; empty: "
                    "annotations.json.")
flags.DEFINE_integer("min_objects", 1, "Minimum objects per image.")
flags.DEFINE_integer("max_objects", 4, "Maximum objects per image.")


def main(argv):
  del argv
  path = make_dataset(FLAGS.out, FLAGS.num_images, FLAGS.image_size,
                      FLAGS.seed, FLAGS.split, FLAGS.min_objects,
                      FLAGS.max_objects)
  print(path)


if __name__ == "__main__":
  flags.mark_flag_as_required("out")
  app.run(main)
