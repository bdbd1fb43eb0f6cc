"""Analysis: the seeds' measurements of ``W`` and ``B``, callbacks and plots.

Metrics (docs/algorithms.md §7), per feedback layer and averaged over the
network:

* ``alignment_angle``: angle in degrees between flattened ``W`` and ``B``
  (xiao2018 Fig. 3a; 0 for ``bp``);
* ``weight_kurtosis``: kurtosis of ``W`` (Pearson's, ``E[(w-μ)^4]/σ^4``,
  3 for a Gaussian; xiao2018 Fig. 3a);
* ``weight_mean``, ``weight_std``: mean and standard deviation of ``W``
  (xiao2018 Fig. 3b, c);
* ``wb_correlation``: Pearson correlation of ``W`` and ``B`` (amit2019
  Fig. 10–11).

:class:`AlignmentLogger` writes them into Keras' epoch ``logs``; the plot
functions read them back from a ``keras.callbacks.CSVLogger`` file.
"""

import csv
import math
import os

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from tfbio.layers.base_feedback import BaseFeedbackLayer
from tfbio.layers.locally_connected import LocallyConnected2D
from tfbio.ops import similarity

METRICS = ("alignment_angle", "weight_kurtosis", "weight_mean", "weight_std",
           "wb_correlation")


def alignment_angle(w, b):
  """Angle in degrees between flattened ``w`` and ``b`` (NaN if one is 0).

  ``tfbio.ops.angle_degrees`` in float64.
  """
  return float(similarity.angle_degrees(np.asarray(w, np.float64),
                                        np.asarray(b, np.float64),
                                        dtype=tf.float64))


def kurtosis(w):
  """Pearson kurtosis ``E[(w-μ)^4] / σ^4`` of the entries (3 = Gaussian)."""
  w = np.asarray(w, np.float64).ravel()
  centered = w - w.mean()
  var = np.mean(centered**2)
  if var == 0:
    return math.nan
  return float(np.mean(centered**4) / var**2)


def pearson_correlation(w, b):
  """Pearson correlation of the entries of ``w`` and ``b`` (NaN if constant).

  ``tfbio.ops.pearson_correlation`` in float64.
  """
  return float(similarity.pearson_correlation(np.asarray(w, np.float64),
                                              np.asarray(b, np.float64),
                                              dtype=tf.float64))


def feedback_layers(model):
  """All tfbio feedback layers of ``model``, nested models included."""
  found = []
  for layer in model._flatten_layers(include_self=False, recursive=True):  # pylint: disable=protected-access
    if isinstance(layer, BaseFeedbackLayer):
      found.append(layer)
  return found


def layer_metrics(layer):
  """The five metrics of one built feedback layer, as a dict of floats."""
  w = np.asarray(layer.kernel.numpy())
  b = np.asarray(layer.feedback_kernel())
  return {
      "alignment_angle": alignment_angle(w, b),
      "weight_kurtosis": kurtosis(w),
      "weight_mean": float(w.mean()),
      "weight_std": float(w.std()),
      "wb_correlation": pearson_correlation(w, b),
  }


def network_metrics(model, per_layer=True):
  """Metrics averaged over the feedback layers (NaNs ignored), and per layer.

  Returns:
    ``{"alignment_angle": ..., ..., "alignment_angle/<layer>": ..., ...}``;
    empty if the model has no built feedback layer.
  """
  layers = [l for l in feedback_layers(model) if l.built]
  if not layers:
    return {}
  rows = {layer.name: layer_metrics(layer) for layer in layers}
  out = {}
  for metric in METRICS:
    values = [r[metric] for r in rows.values() if not math.isnan(r[metric])]
    out[metric] = float(np.mean(values)) if values else math.nan
  if per_layer:
    for name, row in rows.items():
      for metric in METRICS:
        out[f"{metric}/{name}"] = row[metric]
  return out


class AlignmentLogger(keras.callbacks.Callback):
  """Adds the alignment metrics of every feedback layer to the epoch logs.

  Computed once per epoch (at its end, from the variables; NumPy), so it does
  not slow the training steps. Place it *before* ``CSVLogger`` /
  ``TensorBoard`` in the callbacks list so that they record the new keys
  (Keras' progress bar and ``History`` always see them).

  Example:

  >>> model.fit(x, y, epochs=5, callbacks=[
  ...     tfbio.analysis.AlignmentLogger(),
  ...     keras.callbacks.CSVLogger("history.csv")])

  Args:
    per_layer: also log ``<metric>/<layer name>`` for every layer.
    on_train_begin_too: also record the metrics before training, in
      ``self.initial`` (epoch "-1" of xiao2018's curves).
  """

  def __init__(self, per_layer=True, on_train_begin_too=True):
    super().__init__()
    self.per_layer = per_layer
    self.on_train_begin_too = on_train_begin_too
    self.initial = {}
    self._warned = False

  def _metrics(self):
    metrics = network_metrics(self.model, per_layer=self.per_layer)
    if not metrics and not self._warned:
      logging.warning("AlignmentLogger: model %r has no tfbio feedback layer; "
                      "nothing will be logged.", self.model.name)
      self._warned = True
    return metrics

  def on_train_begin(self, logs=None):
    if self.on_train_begin_too:
      self.initial = self._metrics()

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None:
      logs.update(self._metrics())


def read_csv_history(path):
  """A ``CSVLogger`` file as ``{column: np.ndarray}`` (floats; NaN if empty)."""
  with open(path, newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  if not rows:
    raise ValueError(f"No rows in CSV history {path!r}.")
  def value(v):
    try:
      return float(v)
    except (TypeError, ValueError):
      return math.nan
  return {key: np.array([value(r[key]) for r in rows]) for key in rows[0]}


def pyplot():
  """``matplotlib.pyplot`` on the non-interactive Agg backend (files only).

  Imported on first use, so that ``import tfbio`` does not load matplotlib.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _require(history, keys, path):
  missing = [k for k in keys if k not in history]
  if missing:
    raise ValueError(f"CSV history {path!r} has no column(s) {missing}; was "
                     "AlignmentLogger placed before CSVLogger?")


def plot_alignment_history(csv_path, png_path, title=None):
  """Saves xiao2018 Fig. 3a–c from a CSV history: (a) alignment angle and
  kurtosis of ``W``, (b) mean of ``W``, (c) std of ``W``, against epochs
  (network averages, with per-layer angles as thin lines when logged).

  Epochs are plotted 1-based: a Keras ``CSVLogger`` file (0-based
  ``epoch``) is shifted by one, a ``tfbio-train`` ``history.csv`` (1-based)
  is not.
  """
  history = read_csv_history(csv_path)
  _require(history, ("epoch",) + METRICS[:4], csv_path)
  epochs = history["epoch"] + (1 if history["epoch"][0] == 0 else 0)
  plt = pyplot()
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
  ax = axes[0]
  for key in sorted(k for k in history if k.startswith("alignment_angle/")):
    ax.plot(epochs, history[key], lw=0.6, alpha=0.4, color="tab:blue")
  ax.plot(epochs, history["alignment_angle"], lw=2, color="tab:blue",
          label="angle(W, B) (mean)")
  ax.set_xlabel("epoch")
  ax.set_ylabel("alignment angle (degrees)", color="tab:blue")
  twin = ax.twinx()
  twin.plot(epochs, history["weight_kurtosis"], lw=2, color="tab:red",
            label="kurtosis(W)")
  twin.set_ylabel("kurtosis of W", color="tab:red")
  ax.set_title("(a) alignment angle and kurtosis")
  for ax, key, label in ((axes[1], "weight_mean", "(b) mean of W"),
                         (axes[2], "weight_std", "(c) std of W")):
    for k in sorted(k for k in history if k.startswith(key + "/")):
      ax.plot(epochs, history[k], lw=0.6, alpha=0.4, color="tab:gray")
    ax.plot(epochs, history[key], lw=2, color="black")
    ax.set_xlabel("epoch")
    ax.set_title(label)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(png_path, dpi=100)
  plt.close(fig)
  return png_path


def plot_correlation_history(csv_path, png_path, title=None):
  """Saves amit2019 Fig. 10–11 from a CSV history: Pearson correlation of
  ``W`` and ``B`` per layer (and the mean) against epochs."""
  history = read_csv_history(csv_path)
  _require(history, ("epoch", "wb_correlation"), csv_path)
  epochs = history["epoch"] + 1
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(6, 4))
  for key in sorted(k for k in history if k.startswith("wb_correlation/")):
    ax.plot(epochs, history[key], lw=1.2, label=key.split("/", 1)[1])
  ax.plot(epochs, history["wb_correlation"], lw=2.5, color="black",
          label="mean")
  ax.set_xlabel("epoch")
  ax.set_ylabel("corr(W, B)")
  ax.set_ylim(-1.05, 1.05)
  ax.legend(fontsize=7)
  ax.set_title(title or "correlation of forward and feedback weights")
  fig.tight_layout()
  fig.savefig(png_path, dpi=100)
  plt.close(fig)
  return png_path


def untied_filters(layer):
  """The filters of a ``LocallyConnected2D`` layer, one per output position.

  Args:
    layer: a built ``tfbio.layers.LocallyConnected2D``.

  Returns:
    NumPy array ``(out_h, out_w, kh, kw, c_in, filters)`` (amit2019 Fig. 8
    compares these filters across positions).
  """
  if not isinstance(layer, LocallyConnected2D):
    raise ValueError(f"untied_filters() needs a tfbio LocallyConnected2D "
                     f"layer. Received: {type(layer).__name__} {layer!r}")
  if not layer.built:
    raise ValueError(f"Layer {layer.name!r} is not built yet.")
  kh, kw = layer.kernel_size
  kernel = np.asarray(layer.kernel.numpy())
  c_in = kernel.shape[1] // (kh * kw)
  return kernel.reshape(layer.out_h, layer.out_w, kh, kw, c_in, layer.filters)


def default_positions(out_h, out_w):
  """Four positions spread over the grid (the quarter points)."""
  ys = (out_h // 4, (3 * out_h) // 4)
  xs = (out_w // 4, (3 * out_w) // 4)
  return [(y, x) for y in ys for x in xs]


def save_untied_filters_png(layer, path, filters=(0, 1, 2, 3), positions=None,
                            channel=None):
  """Saves a PNG of chosen filters at four positions (amit2019 Fig. 8).

  Each row is one filter (output channel), each column one output position.
  Multi-channel (e.g. RGB) filters are shown as images when ``c_in == 3``
  and ``channel`` is None (each filter min-max scaled), else the chosen input
  channel (default 0) in grey.

  Args:
    layer: a built ``tfbio.layers.LocallyConnected2D``.
    path: output PNG path.
    filters: output channels to show (rows).
    positions: ``(y, x)`` output positions (columns); default: the four
      quarter points of the grid.
    channel: input channel to show, or None (see above).

  Returns:
    ``path``.
  """
  plt = pyplot()
  view = untied_filters(layer)
  out_h, out_w, _, _, c_in, n_filters = view.shape
  positions = list(positions or default_positions(out_h, out_w))
  for f in filters:
    if not 0 <= f < n_filters:
      raise ValueError(f"filter index {f} out of range [0, {n_filters}). "
                       f"Received: filters={tuple(filters)!r}")
  for y, x in positions:
    if not (0 <= y < out_h and 0 <= x < out_w):
      raise ValueError(f"position {(y, x)} is outside the {out_h}x{out_w} "
                       f"output grid. Received: positions={positions!r}")
  rgb = c_in == 3 and channel is None
  channel = 0 if channel is None else channel
  fig, axes = plt.subplots(len(filters), len(positions), squeeze=False,
                           figsize=(1.6 * len(positions), 1.6 * len(filters)))
  for row, f in enumerate(filters):
    for col, (y, x) in enumerate(positions):
      w = view[y, x, :, :, :, f]
      ax = axes[row][col]
      if rgb:
        lo, hi = w.min(), w.max()
        ax.imshow((w - lo) / (hi - lo + 1e-12), interpolation="nearest")
      else:
        ax.imshow(w[:, :, channel], cmap="gray", interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
      if row == 0:
        ax.set_title(f"({y}, {x})", fontsize=8)
      if col == 0:
        ax.set_ylabel(f"filter {f}", fontsize=8)
  fig.suptitle(f"{layer.name}: untied filters at {len(positions)} positions",
               fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


# -- detection training losses (xiao2018 Fig. 2) -------------------------------

LOSS_PANELS = (("box_loss", "box loss"), ("focal_loss", "focal loss"),
               ("loss", "total loss"))
# A classification run's history.csv, per epoch (plot_detection_losses'
# panels=..., x="epoch").
HISTORY_PANELS = (("train_loss", "training loss"),
                  ("train_error", "training error (%)"),
                  ("eval_error", "test error (%)"))


def _smooth(values, window):
  if window <= 1:
    return values
  out, total = [], 0.0
  for i, v in enumerate(values):
    total += v
    if i >= window:
      total -= values[i - window]
    out.append(total / min(i + 1, window))
  return out


def plot_detection_losses(runs, out, window=1, title=None,
                          panels=LOSS_PANELS, x="step"):
  """xiao2018 Fig. 2: box, focal and total training loss, one line per run.

  With ``panels=HISTORY_PANELS, x="epoch"`` the same figure of
  classification runs' ``history.csv`` (training loss, training and test
  error per epoch).

  Args:
    runs: ``[(label, columns)]``: per run, ``{column: [values]}`` with
      ``step`` and the :data:`LOSS_PANELS` keys (a detection run's
      ``steps.csv``: ``tfbio.train.workdir.read_steps(workdir,
      required=[k for k, _ in LOSS_PANELS])``).
    out: PNG path.
    window: moving-average window in logged points (1: raw).
    title: figure title.
    panels: ``((column, panel title), ...)``, one panel each.
    x: the x column (``"step"``: iterations; ``"epoch"``).

  Returns:
    ``out``.
  """
  plt = pyplot()

  data = list(runs)
  fig, axes = plt.subplots(1, len(panels), figsize=(13, 3.8), squeeze=False)
  axes = axes[0]
  for ax, (key, name) in zip(axes, panels):
    for label, columns in data:
      ax.plot(columns[x], _smooth(columns[key], window), label=label)
    ax.set_xlabel("iteration" if x == "step" else x)
    ax.set_ylabel(name)
    ax.set_title(name)
    ax.grid(alpha=0.3)
  axes[-1].legend()
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  fig.savefig(out, dpi=120)
  plt.close(fig)
  logging.info("Wrote %s", out)
  return out
