"""Analysis helpers: views of learned weights and pictures of them."""

import numpy as np

from tfbio.layers.locally_connected import LocallyConnected2D


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
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

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
