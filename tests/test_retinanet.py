"""RetinaNet (xiao2018 §3.2): anchors, matching, losses, model, decode, COCO.

Everything at 128x128 and batch 2, so the file stays fast on 2 CPU cores.
"""

import json
import math
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfbio
from tfbio import models
from tfbio.data import coco
from tfbio.models import retinanet
from tfbio.models.retinanet import anchors as anchors_lib
from tfbio.models.retinanet import decode as decode_lib
from tfbio.models.retinanet import heads as heads_lib
from tfbio.models.retinanet import losses as losses_lib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "tools"))
import make_shapes_coco  # noqa: E402  pylint: disable=wrong-import-position

SIZE = 128
N_128 = 9 * (16**2 + 8**2 + 4**2 + 2**2 + 1**2)  # 3069


@pytest.fixture(scope="module")
def model():
  return models.create_model("retinanet_resnet18", num_classes=3,
                             input_shape=(SIZE, SIZE, 3))


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("shapes")
  make_shapes_coco.make_dataset(str(out), 12, image_size=64, seed=3,
                                split="train")
  make_shapes_coco.make_dataset(str(out), 4, image_size=64, seed=3,
                                split="val")
  return str(out)


def _images(n=2):
  rng = np.random.default_rng(0)
  return rng.standard_normal((n, SIZE, SIZE, 3)).astype("float32")


def _feedback_layers(m):
  return [l for l in m.layers if isinstance(l, tfbio.layers.BaseFeedbackLayer)]


# -- anchors -------------------------------------------------------------------


def test_anchor_counts_per_level_and_total(model):
  assert anchors_lib.feature_sizes(SIZE) == [(16, 16), (8, 8), (4, 4), (2, 2),
                                             (1, 1)]
  assert anchors_lib.anchors_per_level(SIZE) == [2304, 576, 144, 36, 9]
  anchors = anchors_lib.generate_anchors(SIZE)
  assert anchors.shape == (N_128, 4) and anchors.dtype == np.float32
  assert anchors_lib.generate_anchors(512).shape == (49104, 4)
  out = model(_images(1))
  assert out["class_logits"].shape == (1, N_128, 3)
  assert out["box_deltas"].shape == (1, N_128, 4)
  # Odd sizes: levels are ceil(size / stride) in the model too.
  odd = models.create_model("retinanet_resnet18", num_classes=2,
                            input_shape=(100, 72, 3))
  assert odd.output["class_logits"].shape[1] == len(
      anchors_lib.generate_anchors((100, 72)))


def test_anchor_sizes_ratios_and_centres():
  anchors = anchors_lib.generate_anchors(SIZE)
  heights = anchors[:, 2] - anchors[:, 0]
  widths = anchors[:, 3] - anchors[:, 1]
  cells = [(s, r) for s in anchors_lib.SCALES
           for r in anchors_lib.ASPECT_RATIOS]
  starts = np.cumsum([0] + anchors_lib.anchors_per_level(SIZE))
  for level, start in zip(range(3, 8), starts):
    stride = 2**level
    first = anchors[start:start + 9]
    np.testing.assert_allclose((first[:, :2] + first[:, 2:]) / 2,
                               stride / 2, rtol=1e-6)
    for k, (scale, ratio) in enumerate(cells):
      i = start + k
      np.testing.assert_allclose(math.sqrt(heights[i] * widths[i]),
                                 4 * stride * scale, rtol=1e-5)
      np.testing.assert_allclose(heights[i] / widths[i], ratio, rtol=1e-5)
  assert heights[0] == pytest.approx(32 * math.sqrt(0.5), rel=1e-6)
  assert heights[starts[4] + 1] == pytest.approx(512, rel=1e-6)  # P7, 1:1
  # Second position of P3 is one stride to the right of the first.
  np.testing.assert_allclose(anchors[9:18, 1] - anchors[0:9, 1], 8.0,
                             rtol=1e-6)
  with pytest.raises(ValueError, match="image_size"):
    anchors_lib.generate_anchors(0)


def test_match_applies_the_iou_thresholds():
  gt = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], np.float32)  # + padding
  gt_classes = np.array([2, -1], np.int32)
  anchors = np.array([
      [0, 0, 10, 10],     # IoU 1       -> positive
      [0, 0, 10, 16],     # IoU 0.625   -> positive
      [0, 0, 10, 22],     # IoU 0.4545  -> ignored
      [0, 0, 10, 40],     # IoU 0.25    -> background
      [50, 50, 60, 60],   # IoU 0       -> background
  ], np.float32)
  classes, boxes = anchors_lib.match(anchors, gt, gt_classes)
  np.testing.assert_array_equal(classes, [2, 2, -2, -1, -1])
  np.testing.assert_allclose(boxes[0], 0.0, atol=1e-6)
  np.testing.assert_allclose(
      boxes[1], [0.0, (5 - 8) / 16, 0.0, math.log(10 / 16)], atol=1e-6)
  np.testing.assert_array_equal(boxes[2:], 0.0)
  # Batched == unbatched; an image with only padding is all background.
  batch_classes, batch_boxes = anchors_lib.match(
      anchors, np.stack([gt, np.zeros_like(gt)]),
      np.stack([gt_classes, [-1, -1]]))
  np.testing.assert_array_equal(batch_classes[0], classes)
  np.testing.assert_allclose(batch_boxes[0], boxes)
  np.testing.assert_array_equal(batch_classes[1], -1)


def test_match_gives_every_box_its_best_anchor():
  gt = np.array([[0, 0, 10, 30]], np.float32)
  anchors = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [40, 40, 50, 50]],
                     np.float32)  # IoUs 1/3, 1/6, 0
  classes, _ = anchors_lib.match(anchors, gt, [0])
  np.testing.assert_array_equal(classes, [0, -1, -1])
  classes, _ = anchors_lib.match(anchors, gt, [0],
                                 allow_low_quality_matches=False)
  np.testing.assert_array_equal(classes, [-1, -1, -1])
  with pytest.raises(ValueError, match="negative_iou"):
    anchors_lib.match(anchors, gt, [0], positive_iou=0.3, negative_iou=0.4)


def test_encode_decode_round_trip():
  rng = np.random.default_rng(0)
  anchors = anchors_lib.generate_anchors(SIZE)[::37]
  centres = rng.uniform(0, SIZE, (2, len(anchors), 2))
  sizes = rng.uniform(4, 200, (2, len(anchors), 2))
  boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2],
                         -1).astype(np.float32)
  deltas = anchors_lib.encode_boxes(anchors, boxes)
  np.testing.assert_allclose(anchors_lib.decode_boxes(anchors, deltas), boxes,
                             rtol=1e-4, atol=1e-3)
  scaled = anchors_lib.encode_boxes(anchors, boxes, (0.1, 0.1, 0.2, 0.2))
  np.testing.assert_allclose(scaled, np.asarray(deltas) / [0.1, 0.1, 0.2, 0.2],
                             rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(
      anchors_lib.decode_boxes(anchors, scaled, (0.1, 0.1, 0.2, 0.2)), boxes,
      rtol=1e-4, atol=1e-3)


# -- losses --------------------------------------------------------------------


def _focal(p, y, alpha=0.25, gamma=2.0):
  p_t = p if y else 1 - p
  a_t = alpha if y else 1 - alpha
  return -a_t * (1 - p_t)**gamma * math.log(p_t)


def test_focal_loss_matches_a_hand_computation():
  logits = np.array([[2.0, -1.0], [0.5, 3.0], [-4.0, 1.0]], np.float32)
  sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
  # Anchor 0: class 0; anchor 1: background; anchor 2: ignored.
  targets = np.array([[0, -1, -2]])
  expected_focal = (_focal(sig(2.0), 1) + _focal(sig(-1.0), 0)
                    + _focal(sig(0.5), 0) + _focal(sig(3.0), 0))
  elementwise = losses_lib.sigmoid_focal_loss([[1.0, 0.0]], logits[:1])
  np.testing.assert_allclose(
      elementwise, [[_focal(sig(2.0), 1), _focal(sig(-1.0), 0)]], rtol=1e-5)
  keras_focal = keras.losses.BinaryFocalCrossentropy(
      apply_class_balancing=True, alpha=0.25, gamma=2.0, from_logits=True,
      reduction=None)(np.array([[1.0, 0.0]], np.float32), logits[:1])
  np.testing.assert_allclose(np.sum(elementwise), 2 * keras_focal[0],
                             rtol=1e-5)
  box_deltas = np.array([[[0.05, -0.5, 0, 0], [9, 9, 9, 9], [9, 9, 9, 9]]],
                        np.float32)
  box_targets = np.zeros((1, 3, 4), np.float32)
  beta = 1 / 9
  expected_box = 0.5 * 0.05**2 / beta + (0.5 - 0.5 * beta)
  out = losses_lib.retinanet_loss(targets, box_targets, logits[None],
                                  box_deltas)
  assert float(out["num_positives"]) == 1.0
  assert float(out["focal_loss"]) == pytest.approx(expected_focal, rel=1e-5)
  assert float(out["box_loss"]) == pytest.approx(expected_box, rel=1e-5)
  assert float(out["total_loss"]) == pytest.approx(
      expected_focal + expected_box, rel=1e-5)
  # Normalised by the positives: two positive copies give the same loss.
  twice = losses_lib.retinanet_loss(
      np.array([[0, -1, -2], [0, -1, -2]]), np.zeros((2, 3, 4)),
      np.stack([logits, logits]), np.concatenate([box_deltas, box_deltas]))
  assert float(twice["total_loss"]) == pytest.approx(
      float(out["total_loss"]), rel=1e-5)


def test_loss_is_zero_for_perfect_predictions():
  anchors = anchors_lib.generate_anchors(SIZE)
  gt = np.array([[[10, 20, 60, 50], [64, 64, 120, 100]]], np.float32)
  classes, box_targets = anchors_lib.match(anchors, gt, [[1, 2]])
  logits = np.where(np.asarray(classes)[..., None] == np.arange(3), 30.0,
                    -30.0).astype(np.float32)
  out = losses_lib.retinanet_loss(classes, box_targets, logits, box_targets)
  assert float(out["num_positives"]) > 2
  assert float(out["focal_loss"]) < 1e-6
  assert float(out["box_loss"]) == 0.0


# -- model ---------------------------------------------------------------------


def test_registry_entry_and_validation():
  info = models.model_info("retinanet_resnet18")
  assert info.task == "detection" and info.num_classes == 80
  assert info.small_input_shape == (128, 128, 3)
  assert info.input_shape == (512, 512, 3)
  assert "retinanet_resnet18" in models.list_models()
  assert tfbio.models.retinanet_resnet18 is info.builder
  with pytest.raises(ValueError, match="num_classes"):
    models.create_model("retinanet_resnet18", num_classes=0)
  with pytest.raises(ValueError, match="channels"):
    models.create_model("retinanet_resnet18", input_shape=(64, 64, 1))
  with pytest.raises(ValueError, match="backbone_stem"):
    models.create_model("retinanet_resnet18", input_shape=(64, 64, 3),
                        backbone_stem="vgg")


def test_layer_names_and_parameters(model):
  names = {l.name for l in model.layers}
  for name in ("conv1", "layer4_1_conv2", "fpn_lateral3", "fpn_lateral5",
               "fpn_output3", "fpn_output5", "fpn_p6", "fpn_p7", "fpn_p7_relu",
               "class_conv1", "class_conv4", "class_output", "box_conv4",
               "box_output", "class_logits", "box_deltas"):
    assert name in names, name
  assert "fc" not in names
  # P6 is computed from C5 (RetinaNet paper), P7 from ReLU(P6).
  assert model.get_layer("fpn_p6").kernel.shape == (3, 3, 512, 256)
  bias = model.get_layer("class_output").bias.numpy()
  np.testing.assert_allclose(bias, -math.log(99.0), rtol=1e-6)
  assert model.get_layer("class_output").kernel.shape == (3, 3, 256, 27)
  assert model.get_layer("box_output").kernel.shape == (3, 3, 256, 36)


def test_training_step_ss_with_bp_last_layers():
  m = models.create_model("retinanet_resnet18", num_classes=3,
                          input_shape=(SIZE, SIZE, 3), feedback="ss",
                          last_layer="bp")
  on_bp = {l.name for l in _feedback_layers(m) if l.feedback.name == "bp"}
  assert on_bp == {"class_output", "box_output"}
  assert set(m.tfbio_classifier_layers) == on_bp
  assert all(l.feedback.name == "ss" for l in _feedback_layers(m)
             if l.name not in on_bp)
  anchors = retinanet.model_anchors((SIZE, SIZE))
  gt = np.array([[[10, 20, 60, 50], [64, 64, 120, 100]],
                 [[30, 30, 90, 110], [0, 0, 0, 0]]], np.float32)
  class_targets, box_targets = anchors_lib.match(anchors, gt,
                                                 [[0, 2], [1, -1]])
  optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
  before = [w.numpy().copy() for w in m.trainable_weights]
  x = _images()
  with tf.GradientTape() as tape:
    out = m(x, training=True)
    losses = losses_lib.retinanet_loss(class_targets, box_targets,
                                       out["class_logits"], out["box_deltas"])
  grads = tape.gradient(losses["total_loss"], m.trainable_weights)
  assert all(g is not None and np.all(np.isfinite(g)) for g in grads)
  optimizer.apply_gradients(zip(grads, m.trainable_weights))
  for key in ("box_loss", "focal_loss", "total_loss"):
    assert np.isfinite(float(losses[key])), key
  changed = [not np.array_equal(b, w.numpy())
             for b, w in zip(before, m.trainable_weights)]
  assert all(changed)
  after = m(x)
  assert all(np.all(np.isfinite(v)) for v in after.values())


def test_head_weights_are_shared_across_levels(model):
  head_convs = [l.name for l in _feedback_layers(model)
                if l.name.startswith(("class_", "box_"))]
  assert sorted(head_convs) == sorted(
      [f"class_conv{i}" for i in range(1, 5)] + ["class_output"]
      + [f"box_conv{i}" for i in range(1, 5)] + ["box_output"])
  counts = {}
  for num_levels in (2, 5):
    plan = models.FeedbackPlan()
    features = [keras.Input((s, s, 256)) for s in (16, 8, 4, 2, 1)]
    features = features[:num_levels]
    logits, deltas = heads_lib.build_heads(features, 3, 9, plan)
    head = keras.Model(features, [logits, deltas])
    convs = _feedback_layers(head)
    counts[num_levels] = (len(convs), head.count_params())
    assert logits.shape[1] == 9 * sum(s * s for s in (16, 8, 4, 2, 1)[
        :num_levels])
  assert counts[2] == counts[5] and counts[5][0] == 10


def test_keras_round_trip_predicts_the_same(model, tmp_path):
  x = _images()
  expected = model.predict_on_batch(x)
  path = str(tmp_path / "retinanet.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  got = loaded.predict_on_batch(x)
  assert set(got) == {"class_logits", "box_deltas"}
  for key in expected:
    np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-5)
  assert [l.name for l in loaded.layers] == [l.name for l in model.layers]


def test_decode_and_nms_outputs(model):
  out = model(_images())
  anchors = retinanet.model_anchors((SIZE, SIZE))
  det = decode_lib.decode_detections(out["class_logits"], out["box_deltas"],
                                     anchors, image_size=SIZE,
                                     score_threshold=0.0, max_detections=50)
  assert det["boxes"].shape == (2, 50, 4) and det["scores"].shape == (2, 50)
  assert det["classes"].shape == (2, 50) and det["classes"].dtype == tf.int32
  assert det["num_detections"].shape == (2,)
  assert np.all(det["boxes"].numpy() >= 0) and np.all(
      det["boxes"].numpy() <= SIZE)
  # A single confident anchor with zero deltas decodes to that anchor.
  logits = np.full((1, N_128, 3), -10.0, np.float32)
  logits[0, 100, 2] = 5.0
  det = decode_lib.decode_detections(logits, np.zeros((1, N_128, 4)), anchors)
  assert int(det["num_detections"][0]) == 1
  assert int(det["classes"][0, 0]) == 2
  assert float(det["scores"][0, 0]) == pytest.approx(1 / (1 + math.exp(-5)),
                                                     rel=1e-5)
  np.testing.assert_allclose(det["boxes"][0, 0], anchors[100], atol=1e-3)
  # The same as a layer on the model, saved and loaded.
  detector = decode_lib.detection_model(model, score_threshold=0.0,
                                        max_detections=20)
  result = detector(_images())
  assert set(result) == set(decode_lib.DETECTION_KEYS)
  assert result["boxes"].shape == (2, 20, 4)


def test_backbone_weights_load_from_resnet18(model):
  classifier = models.create_model("resnet18", num_classes=10,
                                   input_shape=(64, 64, 3), feedback="fa")
  copied = retinanet.backbone.load_backbone_weights(model, classifier)
  assert "conv1" in copied and "layer4_1_bn2" in copied and "fc" not in copied
  np.testing.assert_array_equal(model.get_layer("conv1").kernel.numpy(),
                                classifier.get_layer("conv1").kernel.numpy())


def test_cifar_stem_uses_levels_1_to_5():
  m = models.create_model("retinanet_resnet18", num_classes=2,
                          input_shape=(32, 32, 3), backbone_stem="cifar")
  anchors = retinanet.model_anchors((32, 32), "cifar")
  assert m.output["box_deltas"].shape[1] == len(anchors) == 9 * (
      16**2 + 8**2 + 4**2 + 2**2 + 1)
  assert decode_lib.detection_model(m)(
      np.zeros((1, 32, 32, 3), np.float32))["boxes"].shape == (1, 100, 4)


# -- data ----------------------------------------------------------------------


def test_make_shapes_coco_loads_and_ground_truth_scores_map_1(shapes_dir):
  info = coco.coco_info(shapes_dir, "train")
  assert info["num_images"] == 12 and info["num_classes"] == 3
  assert info["category_names"] == ["rectangle", "ellipse", "triangle"]
  with open(info["annotation_file"], encoding="utf-8") as f:
    gt = json.load(f)
  per_image = np.bincount([a["image_id"] for a in gt["annotations"]])[1:]
  assert per_image.min() >= 1 and per_image.max() <= 4
  assert all(a["iscrowd"] == 0 and a["area"] > 0 for a in gt["annotations"])
  detections = [{"image_id": a["image_id"], "category_id": a["category_id"],
                 "bbox": a["bbox"], "score": 1.0} for a in gt["annotations"]]
  stats = coco.coco_eval(info["annotation_file"], detections)
  assert stats["AP"] == pytest.approx(1.0)
  assert stats["AP50"] == pytest.approx(1.0)
  assert stats["AP75"] == pytest.approx(1.0)
  assert set(stats) == set(coco.STATS_KEYS)
  assert "segmentation" not in detections[0]  # input not modified
  assert coco.coco_eval(gt, [])["AP"] == 0.0
  shifted = [dict(d, bbox=[d["bbox"][0] + d["bbox"][2], d["bbox"][1],
                           d["bbox"][2], d["bbox"][3]]) for d in detections]
  assert coco.coco_eval(gt, shifted)["AP"] < 0.2


def test_make_shapes_coco_is_deterministic(shapes_dir, tmp_path):
  again = make_shapes_coco.make_dataset(str(tmp_path), 12, image_size=64,
                                        seed=3, split="train")
  with open(again, "rb") as f1, open(
      os.path.join(shapes_dir, "annotations_train.json"), "rb") as f2:
    assert f1.read() == f2.read()
  for name in ("train_000001.png", "train_000012.png"):
    with open(os.path.join(tmp_path, "images", name), "rb") as f1, open(
        os.path.join(shapes_dir, "images", name), "rb") as f2:
      assert f1.read() == f2.read()
  val = coco.coco_info(shapes_dir, "val")
  assert val["num_images"] == 4
  with open(val["annotation_file"], encoding="utf-8") as f:
    assert json.load(f)["images"][0]["file_name"] == "val_000001.png"


def test_coco_pipeline_round_trips_through_detections_to_coco(shapes_dir):
  info = coco.coco_info(shapes_dir, "train")
  ds = coco.coco_dataset(shapes_dir, "train", image_size=96, max_boxes=5,
                         batch_size=6)
  results = []
  for batch in ds:
    assert batch["image"].shape[1:] == (96, 96, 3)
    assert batch["boxes"].shape[1:] == (5, 4)
    assert batch["classes"].dtype == tf.int32
    np.testing.assert_allclose(batch["scale"], 1.5)
    n = batch["num_boxes"].numpy()
    classes = batch["classes"].numpy()
    assert all(np.all(classes[i, n[i]:] == -1) for i in range(len(n)))
    det = {"boxes": batch["boxes"], "classes": batch["classes"],
           "scores": tf.ones(batch["classes"].shape),
           "num_detections": batch["num_boxes"]}
    results += coco.detections_to_coco(det, batch["image_id"], batch["scale"],
                                       info["category_ids"])
  assert coco.coco_eval(info["annotation_file"], results)["AP"] == (
      pytest.approx(1.0))
  # Targets for the model come straight from a batch.
  batch = next(iter(ds))
  classes, deltas = anchors_lib.match(anchors_lib.generate_anchors(96),
                                      batch["boxes"], batch["classes"])
  assert classes.shape == (6, len(anchors_lib.generate_anchors(96)))
  assert np.all(np.isfinite(deltas))


def test_coco_pipeline_flips_boxes_with_images(shapes_dir):
  plain = coco.coco_dataset(shapes_dir, "train", image_size=64,
                            normalize=False)
  flipped = coco.coco_dataset(shapes_dir, "train", image_size=64,
                              normalize=False, augment=True, seed=0)
  seen_flip = False
  for a, b in zip(plain, flipped):
    n = int(a["num_boxes"])
    if np.array_equal(a["image"], b["image"]):
      np.testing.assert_allclose(a["boxes"], b["boxes"])
      continue
    seen_flip = True
    np.testing.assert_allclose(b["image"], a["image"][:, ::-1], atol=1e-6)
    mirrored = np.stack([a["boxes"][:n, 0], 64 - a["boxes"][:n, 3],
                         a["boxes"][:n, 2], 64 - a["boxes"][:n, 1]], -1)
    np.testing.assert_allclose(b["boxes"][:n], mirrored, atol=1e-4)
  assert seen_flip
  with pytest.raises(FileNotFoundError, match="nope"):
    coco.coco_dataset(shapes_dir, "nope")
