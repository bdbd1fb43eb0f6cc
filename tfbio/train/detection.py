"""The detection variant of the training loop: RetinaNet on COCO-format data.

xiao2018 §3.2 trains RetinaNet (ResNet-18 FPN) on COCO and compares the box,
focal and total training losses of BP, "SS + last-layer BP" and "FA +
last-layer BP" (its Fig. 2). :class:`DetectionTrainer` is
:class:`tfbio.train.Trainer` with

* data: a COCO-format directory (``data.name="coco"``, ``data.data_dir`` =
  the directory, splits ``data.train_split`` / ``data.eval_split``; layouts
  in ``tfbio.data.coco``), or tensorflow-datasets' prepared ``coco/2017``
  (``data.name="coco/2017"``); images resized (aspect kept) and padded to
  ``data.image_size``, ImageNet-normalised; the anchors' targets
  (``retinanet.anchors.match``) computed in the input pipeline;
* loss: ``retinanet.losses.retinanet_loss`` (focal α 0.25, γ 2 + smooth-L1,
  each normalised by the replica's positive anchors, averaged over
  replicas); ``box_loss``, ``focal_loss`` and ``loss`` (their sum) are
  logged per step (``steps.csv``, TensorBoard) and per epoch
  (``history.csv``);
* evaluation: decode + NMS, then ``pycocotools.cocoeval.COCOeval`` on the
  eval split: ``eval_AP`` (mAP@[.5:.95]), ``eval_AP50``, ``eval_AP75``,
  ``eval_APs/m/l`` and recalls; runs are ranked by ``eval_AP``.

The per-replica normalisation by positives differs from Detectron's global
count by a factor that averages out; with one replica they are the same.
"""

import math

from absl import logging
import tensorflow as tf

from tfbio.train import strategy as strategy_lib
from tfbio.train import trainer as trainer_lib
from tfbio.utils import seeds as seeds_lib

TFDS_COCO = "coco/2017"


class DetectionTrainer(trainer_lib.Trainer):
  """:class:`tfbio.train.Trainer` for ``task="detection"`` models."""

  step_metrics = ("loss", "box_loss", "focal_loss")
  primary_metric = "eval_AP"

  def _retinanet(self):
    from tfbio.models import retinanet  # pylint: disable=g-import-not-at-top
    return retinanet

  def setup_data(self):
    from tfbio.data import coco  # pylint: disable=g-import-not-at-top

    c = self.config.data
    size = c.image_size or 512
    self.input_shape = (size, size, 3)
    stem = self.config.model.kwargs.get("backbone_stem", "imagenet")
    self.anchors = self._retinanet().model_anchors(self.input_shape, stem)
    if c.name == TFDS_COCO:
      self.num_classes = len(coco.COCO_2017_CATEGORY_IDS)
      self.category_ids = list(coco.COCO_2017_CATEGORY_IDS)
      n_train = 117266  # tfds coco/2017 train (trainval35k's successor)
      self.eval_annotations = None
    elif c.name == "coco":
      if not c.data_dir:
        raise ValueError("data.name='coco' needs data.data_dir: a COCO-format"
                         " directory (tools/make_shapes_coco.py writes one).")
      train = coco.coco_info(c.data_dir, c.train_split)
      evaluation = coco.coco_info(c.data_dir, c.eval_split)
      self.num_classes = train["num_classes"]
      self.category_ids = train["category_ids"]
      n_train = train["num_images"]
      self.eval_annotations = evaluation["annotation_file"]
      self.n_eval = evaluation["num_images"]
    else:
      raise ValueError(f"Detection data.name must be 'coco' (a COCO-format "
                       f"directory in data.data_dir) or {TFDS_COCO!r}. "
                       f"Received: data.name={c.name!r}")
    if c.max_train_examples:
      n_train = min(n_train, c.max_train_examples)
    self.steps_per_epoch = self.config.steps_per_epoch or max(
        1, n_train // self.config.batch_size)
    if c.max_eval_examples:
      self.n_eval = min(getattr(self, "n_eval", c.max_eval_examples),
                        c.max_eval_examples)

  def _coco(self, split, *, training, seed):
    from tfbio.data import coco  # pylint: disable=g-import-not-at-top

    c, d = self.config.data, self.config.detection
    options = dict(image_size=self.input_shape[0], max_boxes=d.max_boxes,
                   batch_size=self.config.batch_size, shuffle=training,
                   seed=seed, repeat=training, augment=training and d.flip,
                   drop_remainder=training)
    if c.name == TFDS_COCO:
      return coco.tfds_coco_dataset(split, data_dir=c.data_dir, **options)
    return coco.coco_dataset(c.data_dir, split, **options)

  def _train_dataset(self, epoch, skip):
    match = self._retinanet().anchors.match
    anchors = tf.constant(self.anchors, tf.float32)
    ds = self._coco(self.config.data.train_split, training=True,
                    seed=seeds_lib.epoch_seed(self.config.seed, epoch))
    ds = ds.map(lambda b: (b["image"], match(anchors, b["boxes"],
                                             b["classes"])),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return strategy_lib.shard_by_data(
        ds.take(self.steps_per_epoch).skip(skip).prefetch(2))

  def replica_losses(self, batch):
    images, (class_targets, box_targets) = batch
    outputs = self.model(images, training=True)
    losses = self._retinanet().losses.retinanet_loss(
        class_targets, box_targets, outputs["class_logits"],
        outputs["box_deltas"])
    share = 1.0 / self.strategy.num_replicas_in_sync
    loss = losses["total_loss"] * share
    return loss, {"loss": loss, "box_loss": losses["box_loss"] * share,
                  "focal_loss": losses["focal_loss"] * share}

  def evaluate(self):
    """COCO box AP of the eval split (``eval_AP``, ``eval_AP50``, ...)."""
    from tfbio.data import coco  # pylint: disable=g-import-not-at-top

    if self.config.data.name == TFDS_COCO and not self.eval_annotations:
      raise ValueError("COCO evaluation of tfds coco/2017 needs COCO's "
                       "instances_val2017.json: set detection.eval_annotations"
                       " (not implemented yet); use a COCO-format directory.")
    decode = self._retinanet().decode.decode_detections
    anchors = tf.constant(self.anchors, tf.float32)
    model, size = self.model, self.input_shape[0]

    @tf.function
    def detect(images):
      out = model(images, training=False)
      return decode(out["class_logits"], out["box_deltas"], anchors,
                    image_size=size)

    results, image_ids = [], []
    ds = self._coco(self.config.data.eval_split, training=False, seed=0)
    if getattr(self, "n_eval", None):
      ds = ds.take(math.ceil(self.n_eval / self.config.batch_size))
    for batch in ds:
      detections = {k: v.numpy() for k, v in detect(batch["image"]).items()}
      ids = batch["image_id"].numpy()
      results += coco.detections_to_coco(detections, ids,
                                         batch["scale"].numpy(),
                                         self.category_ids)
      image_ids += [int(i) for i in ids]
    stats = coco.coco_eval(self.eval_annotations, results,
                           image_ids=image_ids)
    logging.info("COCO eval on %d images, %d detections: AP %.4f AP50 %.4f",
                 len(image_ids), len(results), stats["AP"], stats["AP50"])
    return {f"eval_{k}": float(v) for k, v in stats.items()}

