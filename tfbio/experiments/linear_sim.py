"""amit2019 §5.1: updated random feedback in a deep linear network (Fig. 12).

The library of ``tools/linear_sim.py`` (the binary) and of the reproduction's
``amit2019_linear`` claim.

A linear network 40 → 100 → 100 → 10 (no biases, no nonlinearity) made of
``tfbio.layers.Dense(..., use_bias=False)`` layers learns ``Y`` from
``X = I_40`` (the 40 one-hot vectors as one batch) by full-batch gradient
descent on the summed quadratic loss ``0.5 ||Y - f(X)||²``; the entries of
``Y`` (40 × 10) are i.i.d. ``N(0, 0.2²)``. "Error" below is
``e = ||Y - f(X)||² = tr(EᵀE)`` (amit2019's ``e``), i.e. twice the loss.

Settings (docs/algorithms.md §7):

* ``eps=ε`` for ε ∈ {0, 0.25, 0.5, 1}: ``feedback="urfb"``, ``W_l(0) = 0``
  and random ``R_l(0) = B_l(0) ~ N(0, feedback_std²)``. The backward pass is
  tfbio's: urfb gives ``B`` exactly ``W``'s gradient ``g``, and the update is
  ``W -= η g``, ``B -= ε η g``. ε = 0 is FRFB (fixed feedback, ``fa``),
  ε = 1 is URFB.
* ``BP``: ``feedback="bp"`` from a random init ``W_l(0) ~ N(0, init_std²)``.

Each seed draws its own ``Y``, ``R_l(0)`` and BP init; within a seed every ε
starts from the same ``R_l(0)`` (paired comparison). Curves are averaged over
seeds. The output is one PNG like amit2019 Fig. 12 (left: log10 error against
iteration; right: Pearson correlation of ``W_l`` and ``B_l`` per layer for
each ε — our ``B`` has ``W``'s shape, so this is corr(W, B), the paper's
corr(W, Rᵀ)) and a markdown table of the iterations needed to reach the
target error.

Defaults (chosen so that the curves look like amit2019 Fig. 12):
``--learning_rate=0.01`` with ``R_l(0) ~ N(0, 0.05²)`` (and BP's
``W_l(0) ~ N(0, 0.05²)``): every setting reaches the target within the 1,000
iterations of amit2019 (ε = 0 last, at ~650) and the ε ordering is clear
(ε = 1 at ~480). The step only rescales time (0.02 halves every count; 0.005
leaves most settings above the target at 1,000); the ε effect is larger for a
smaller ``R(0)``, because ``B(t) = R(0) + ε W(t)`` is then dominated by the
update (with ``R(0)`` std 0.1 the ε = 0 and ε = 1 counts differ by ~15 %
instead of ~35 %). ``--target_error=0.01`` is 1 % of ``||Y||²``, the error of
the zero network (the initial error of the ε runs).

"""

import collections
import time

from absl import logging
import numpy as np

DIMS = (40, 100, 100, 10)
TARGET_STD = 0.2

Curves = collections.namedtuple(
    "Curves", ["settings", "errors", "correlations", "initial_errors",
               "target", "seeds"])
Curves.__doc__ = """Result of :func:`run`.

Attributes:
  settings: setting names, in order (``"eps=0"``, ..., ``"BP"``).
  errors: ``{setting: (n_seeds, iterations + 1) array}``; column ``t`` is the
    error ``||Y - f(X)||²`` after ``t`` updates.
  correlations: ``{setting: (n_seeds, iterations + 1, 3) array}``: Pearson
    correlation of ``W_l`` and ``B_l`` per layer (NaN while ``W_l = 0``).
  initial_errors: ``(n_seeds,)`` array of ``||Y||²``.
  target: the target error fraction (of ``||Y||²``).
  seeds: the seeds.
"""


def setting_name(epsilon):
  return f"eps={epsilon:g}"


def make_data(seed):
  """``X = I_40`` and ``Y`` (40 × 10, entries N(0, 0.2²)), float32."""
  x = np.eye(DIMS[0], dtype=np.float32)
  y = np.random.default_rng(seed).normal(
      0.0, TARGET_STD, size=(DIMS[0], DIMS[-1])).astype(np.float32)
  return x, y


def build_network(feedback, seed, kernel_std=0.05, feedback_std=0.05):
  """The linear 40→100→100→10 network of tfbio Dense layers, built.

  Args:
    feedback: ``"urfb"`` (``W(0) = 0``, random ``B(0)``) or ``"bp"``.
    seed: run seed; layer ``l`` gets seed ``1000 * seed + l`` (which keys
      ``B_l(0)``) and its BP init is keyed the same way.
    kernel_std: for ``"bp"``, the std of the normal ``W_l(0)``.
    feedback_std: for ``"urfb"``, the std of the normal ``B_l(0)``.

  Returns:
    A list of the three built ``tfbio.layers.Dense``.
  """
  import keras  # pylint: disable=g-import-not-at-top
  import tfbio  # pylint: disable=g-import-not-at-top

  layers = []
  for l, (n_in, n_out) in enumerate(zip(DIMS[:-1], DIMS[1:]), start=1):
    layer_seed = 1000 * seed + l
    if feedback == "bp":
      kernel_init = keras.initializers.RandomNormal(
          stddev=kernel_std, seed=layer_seed)
      algorithm = "bp"
    elif feedback == "urfb":
      kernel_init = "zeros"
      # tfbio re-seeds this initializer from the layer seed.
      algorithm = tfbio.feedback.get(
          "urfb", initializer=keras.initializers.RandomNormal(
              stddev=feedback_std))
    else:
      raise ValueError(f"feedback must be 'urfb' or 'bp'. Received: "
                       f"feedback={feedback!r}")
    layer = tfbio.layers.Dense(n_out, use_bias=False, feedback=algorithm,
                               kernel_initializer=kernel_init,
                               seed=layer_seed, name=f"W{l}")
    layer.build((None, n_in))
    layers.append(layer)
  return layers


def feedback_variable(layer):
  """The trainable ``B`` variable of a ``urfb`` layer (None for ``bp``)."""
  for v in layer.trainable_weights:
    if v.name == "feedback_kernel":
      return v
  return None


def train(layers, x, y, epsilon, iterations, learning_rate):
  """Full-batch gradient descent; ``W -= η g_W`` and ``B -= ε η g_B``.

  The gradients come from tfbio's layers (``GradientTape`` through their
  custom backward pass); nothing of the backward pass is re-implemented.

  Returns:
    ``(errors, correlations)``: NumPy arrays ``(iterations + 1,)`` and
    ``(iterations + 1, n_layers)``; entry ``t`` is measured after ``t``
    updates.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfbio.ops import similarity  # pylint: disable=g-import-not-at-top

  kernels = [layer.kernel for layer in layers]
  feedbacks = [feedback_variable(layer) for layer in layers]
  urfb = all(b is not None for b in feedbacks)
  if not urfb and epsilon:
    raise ValueError(f"epsilon={epsilon!r} needs urfb layers.")
  x = tf.constant(x)
  y = tf.constant(y)
  lr = tf.constant(learning_rate, tf.float32)
  feedback_lr = tf.constant(epsilon * learning_rate, tf.float32)

  def forward():
    h = x
    for layer in layers:
      h = layer(h, training=True)
    return h

  def correlations():
    # NaN while W = 0 (tfbio.ops.pearson_correlation).
    return tf.stack([similarity.pearson_correlation(
        layer.kernel, layer.feedback_kernel()) for layer in layers])

  def measure():
    return tf.reduce_sum(tf.square(y - forward())), correlations()

  @tf.function
  def loop():
    errors = tf.TensorArray(tf.float32, size=iterations + 1)
    corrs = tf.TensorArray(tf.float32, size=iterations + 1)
    for i in tf.range(iterations):
      with tf.GradientTape() as tape:
        out = forward()
        err = tf.reduce_sum(tf.square(y - out))
        loss = 0.5 * err
      variables = kernels + (feedbacks if urfb else [])
      grads = tape.gradient(loss, variables)
      errors = errors.write(i, err)
      corrs = corrs.write(i, correlations())
      for w, g in zip(kernels, grads[:len(kernels)]):
        w.assign_sub(lr * g)
      if urfb:
        for b, g in zip(feedbacks, grads[len(kernels):]):
          b.assign_sub(feedback_lr * g)
    err, corr = measure()
    errors = errors.write(iterations, err)
    corrs = corrs.write(iterations, corr)
    return errors.stack(), corrs.stack()

  errors, corrs = loop()
  return errors.numpy(), corrs.numpy()


def run(epsilons=(0.0, 0.25, 0.5, 1.0), iterations=1000, seeds=(0, 1, 2),
        learning_rate=0.01, feedback_std=0.05, init_std=0.05, bp=True,
        target_error=0.01):
  """Runs every setting for every seed; returns :class:`Curves`."""
  import keras  # pylint: disable=g-import-not-at-top

  epsilons = [float(e) for e in epsilons]
  for e in epsilons:
    if not 0.0 <= e <= 1.0:
      raise ValueError(f"epsilons must lie in [0, 1]. Received: epsilon={e!r}")
  if iterations <= 0 or learning_rate <= 0 or not seeds:
    raise ValueError(f"Need iterations > 0, learning_rate > 0 and a seed. "
                     f"Received: iterations={iterations!r}, learning_rate="
                     f"{learning_rate!r}, seeds={seeds!r}")
  settings = [(setting_name(e), "urfb", e) for e in epsilons]
  if bp:
    settings.append(("BP", "bp", 0.0))
  errors = {name: [] for name, _, _ in settings}
  correlations = {name: [] for name, _, _ in settings}
  initial = []
  for seed in seeds:
    x, y = make_data(seed)
    initial.append(float(np.sum(np.square(y.astype(np.float64)))))
    for name, feedback, epsilon in settings:
      keras.utils.clear_session()
      start = time.time()
      layers = build_network(feedback, seed, kernel_std=init_std,
                             feedback_std=feedback_std)
      err, corr = train(layers, x, y, epsilon, iterations, learning_rate)
      errors[name].append(err)
      correlations[name].append(corr)
      logging.info("seed %d %-9s error %.3g -> %.3g, corr(W, B) per layer "
                   "%s (%.1f s)", seed, name, err[0], err[-1],
                   np.array2string(corr[-1], precision=3), time.time() - start)
  return Curves(
      settings=[name for name, _, _ in settings],
      errors={k: np.stack(v) for k, v in errors.items()},
      correlations={k: np.stack(v) for k, v in correlations.items()},
      initial_errors=np.array(initial), target=float(target_error),
      seeds=list(seeds))


def iterations_to_target(curves, setting):
  """Per seed, the first iteration whose error is ≤ target·||Y||² (or None)."""
  out = []
  for err, initial in zip(curves.errors[setting], curves.initial_errors):
    hits = np.nonzero(err <= curves.target * initial)[0]
    out.append(int(hits[0]) if hits.size else None)
  return out


def table(curves):
  """Markdown table: iterations to target (mean ± std over seeds), error."""
  lines = [
      f"| setting | iterations to error ≤ {100 * curves.target:g} % of "
      "||Y||² (mean ± std) | final error (mean ± std) | final / ||Y||² |",
      "|---|---|---|---|"]
  for name in curves.settings:
    its = iterations_to_target(curves, name)
    reached = [i for i in its if i is not None]
    if len(reached) == len(its):
      cell = f"{np.mean(reached):.1f} ± {np.std(reached):.1f}"
    elif reached:
      cell = (f"{np.mean(reached):.1f} ± {np.std(reached):.1f} "
              f"({len(its) - len(reached)}/{len(its)} not reached)")
    else:
      cell = "not reached"
    final = curves.errors[name][:, -1]
    ratio = final / curves.initial_errors
    lines.append(f"| {name} | {cell} | {np.mean(final):.3g} ± "
                 f"{np.std(final):.2g} | {np.mean(ratio):.2e} |")
  return "\n".join(lines)


def plot(curves, path):
  """Saves the Fig. 12-like PNG; returns ``path``."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  colors = dict(zip(curves.settings, plt.cm.viridis(
      np.linspace(0.0, 0.85, len(curves.settings)))))
  if "BP" in colors:
    colors["BP"] = "tab:red"
  fig = plt.figure(figsize=(12, 6.5))
  grid = fig.add_gridspec(3, 2, width_ratios=(1.3, 1.0))
  ax = fig.add_subplot(grid[:, 0])
  for name in curves.settings:
    log_err = np.log10(np.maximum(curves.errors[name], 1e-30))
    for row in log_err:
      ax.plot(row, color=colors[name], lw=0.5, alpha=0.35)
    ax.plot(log_err.mean(axis=0), color=colors[name], lw=2, label=name)
  ax.axhline(np.log10(curves.target * curves.initial_errors.mean()),
             color="gray", ls="--", lw=1,
             label=f"target ({100 * curves.target:g} % of ||Y||²)")
  ax.set_xlabel("iteration")
  ax.set_ylabel("log10 error ||Y - f(X)||²")
  ax.set_title(f"linear 40-100-100-10, mean over {len(curves.seeds)} seeds")
  ax.legend()
  eps_settings = [n for n in curves.settings if n != "BP"]
  n_layers = len(DIMS) - 1
  for l in range(n_layers):
    ax = fig.add_subplot(grid[n_layers - 1 - l, 1])
    for name in eps_settings:
      # NaN (not drawn) while W_l = 0: the same iterations for every seed.
      ax.plot(curves.correlations[name][:, :, l].mean(axis=0),
              color=colors[name], lw=1.5, label=name)
    ax.set_ylim(-0.1, 1.05)
    ax.set_ylabel(f"corr(W{l + 1}, B{l + 1})")
    if l == 0:
      ax.set_xlabel("iteration")
    if l == n_layers - 1:
      ax.set_title("correlation of forward and feedback weights")
      ax.legend(fontsize=7, loc="lower right")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path
