"""Export of a trained model: a SavedModel for serving and a ``.keras`` file."""

import os

from absl import logging


def export_model(model, workdir, out=None):
  """Writes ``out/saved_model`` and ``out/model.keras``; returns ``out``.

  A detection model (RetinaNet, dict outputs ``class_logits`` /
  ``box_deltas``) is exported with decoding and NMS in the graph: its
  ``serve`` signature maps an image batch to ``boxes`` (yxyx pixels of the
  input), ``scores``, ``classes`` (0-based) and ``num_detections``.
  """
  out = out or os.path.join(workdir, "export")
  os.makedirs(out, exist_ok=True)
  served = model
  if isinstance(model.output, dict) and "class_logits" in model.output:
    from tfbio.models.retinanet import decode  # pylint: disable=g-import-not-at-top
    served = decode.detection_model(model)
  served.export(os.path.join(out, "saved_model"), verbose=False)
  model.save(os.path.join(out, "model.keras"))
  logging.info("Exported %s/saved_model and %s/model.keras", out, out)
  return out
