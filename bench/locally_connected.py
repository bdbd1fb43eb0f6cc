r"""Speed and memory of ``LocallyConnected2D``'s two forms against a tied conv.

Times one forward + backward pass -- the layer's output on a fixed random
input, the loss ``sum(y**2)``, and the gradients with respect to the input and
to every trainable variable (no optimizer) -- compiled as a ``tf.function``,
at batch size 64 (``--batch_size``), with the feedback algorithm
``--feedback`` (default ``bp``), for

* ``tfbio.layers.LocallyConnected2D(implementation="dense")``: patch
  extraction + a per-position ``einsum``;
* ``tfbio.layers.LocallyConnected2D(implementation="sparse")``: the
  connectivity matrix as a ``tf.SparseTensor`` (amit2019's form);
* ``tfbio.layers.LocallyConnected2D(implementation="offsets")``: a sum over
  the kernel offsets, no patches (targets: at most 3x the conv, allocator
  peak at most 1.5x the step minimum);
* ``conv``: the tied ``tfbio.layers.Conv2D`` of the same shape (reference,
  always measured),

at two shapes (``--shapes``):

* ``a``: amit2019 simpnet's first layer, 32x32x3 -> 32 filters 5x5, SAME,
  stride 1;
* ``b``: 16x16x64 -> 64 filters 3x3, SAME, stride 1.

Time: after ``--warmup`` untimed steps each (tracing, graph optimization), the
timing runs in ``--rounds`` rounds; each round times ``--steps`` consecutive
steps of every implementation (``--sparse_steps`` for the much slower sparse
form) in an order rotated from round to round, so that machine noise hits all
of them alike. A round's figure is its wall time over its steps; the reported
figure is the median over rounds. ``ratio to conv`` divides by the conv's
median and ``sparse / dense`` is the sparse median over the dense one (same
shape and XLA mode).

The step hands ``2y`` (the gradient of ``sum(y**2)``) to the tape as the
output gradient, and each step's results are dropped before the next step
runs: differentiating the sum made Grappler fold an output-sized ``ones``
constant that stayed allocated, and the previous step's gradients stayed
alive during the next; both inflated every form's peak (issue 17).

Memory: every (shape, implementation, xla) configuration runs again in its own
fresh subprocess (this script re-invoked with ``--child_config``) that builds
the layer and its input, resets its peak resident set size
(``/proc/self/clear_refs``, Linux, so that ``ru_maxrss`` restarts from the
current RSS and the initializers' temporaries drop out) and reads
``ru_maxrss`` -- the baseline -- then runs one step (tracing, graph
optimization, the step) and ``--mem_steps`` more. ``peak`` is the largest
``ru_maxrss`` over those steps, ``increment`` that minus the baseline;
``steady`` (JSON and log only) is the increment of the later steps alone,
the peak being reset again after the first (where the reset is not
available, the baseline is the peak so far and ``steady`` is ``None``). The
peak varies from run to run with the order in which the executor's threads
run independent ops (+-30% seen for dense), so each configuration runs
``--mem_repeats`` times (``--sparse_mem_repeats`` for sparse) and the run
with the median increment is reported (JSON: every run's increment). RSS
includes what the allocator keeps after a free and TensorFlow's fixed costs
of running a step (the conv rows show their size), so read the increments
against the conv's. ``analytic`` is the size in float32 of
"weights + activations" = kernel + bias + input + output (LC kernel
``P*K*filters`` with ``P = out_h*out_w``, ``K = kh*kw*c_in``, bias
``out_h*out_w*filters``; conv kernel ``kh*kw*c_in*filters``, bias
``filters``), plus the layer's other float32 weights (a stored feedback
kernel such as ``fa``'s ``B``, masks; none for ``bp``).

The issue's targets for the dense form: at least 10x faster than sparse, at
most 3x the tied conv, increment at most 1.5x the analytic size; misses are
marked in the table. ``--xla=on`` compiles with ``jit_compile=True``; the
sparse form is not XLA-compilable and is skipped there.

Run (takes about 5 minutes on 2 CPU cores; use a quiet machine):

    .venv/bin/python bench/locally_connected.py
    .venv/bin/python bench/locally_connected.py --shapes=b --xla=both \
        --implementations=dense --out=/tmp/lc.json
    .venv/bin/python bench/locally_connected.py --steps=2 --rounds=1 \
        --warmup=1 --mem_steps=1  # smoke

Prints a markdown table (shape, xla, implementation, median ms per forward +
backward step, ratio to conv, sparse / dense, peak RSS, increment,
analytic size, increment / analytic); ``--out`` also writes it to
a file: JSON (every round's figure included) if the name ends in ``.json``,
else markdown.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags
from absl import logging

FLAGS = flags.FLAGS

# name -> (input (h, w, c), filters, kernel size, stride, padding, label)
SHAPES = {
    "a": ((32, 32, 3), 32, 5, 1, "same",
          "32x32x3 -> 32@5x5 (amit2019 simpnet conv1)"),
    "b": ((16, 16, 64), 64, 3, 1, "same", "16x16x64 -> 64@3x3"),
}
IMPLEMENTATIONS = ("dense", "sparse", "offsets", "conv")
CHILD_MARK = "LC_BENCH_RESULT "
MIB = 2.0**20

flags.DEFINE_list("shapes", list(SHAPES), f"Shapes to measure, from "
                  f"{tuple(SHAPES)}.")
flags.DEFINE_list("implementations", list(IMPLEMENTATIONS),
                  f"Implementations, from {IMPLEMENTATIONS}; conv is always "
                  "added as reference.")
flags.DEFINE_string("feedback", "bp", "Feedback algorithm of every layer "
                    "(a name of tfbio.feedback.names()).")
flags.DEFINE_enum("xla", "off", ["off", "on", "both"],
                  "Compile with jit_compile=False ('off'), True ('on') or "
                  "both; the sparse form is skipped with XLA on.")
flags.DEFINE_integer("steps", 10, "Timed steps per round of dense and conv.",
                     lower_bound=1)
flags.DEFINE_integer("sparse_steps", 1, "Timed steps per round of sparse "
                     "(one of its steps takes seconds).", lower_bound=1)
flags.DEFINE_integer("rounds", 15, "Rounds; the median over rounds is "
                     "reported.", lower_bound=1)
flags.DEFINE_integer("warmup", 3, "Untimed steps per implementation before "
                     "timing (tracing and graph optimization happen here).",
                     lower_bound=1)
flags.DEFINE_integer("batch_size", 64, "Batch size.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the weights and the random input.")
flags.DEFINE_bool("memory", True, "Measure peak memory in subprocesses.")
flags.DEFINE_integer("mem_steps", 3, "Steps after the first in each memory "
                     "subprocess.", lower_bound=1)
flags.DEFINE_integer("mem_repeats", 3, "Memory subprocesses per dense or "
                     "conv configuration; the median increment is reported "
                     "(the peak varies from run to run with the order in "
                     "which the executor's threads run independent ops).",
                     lower_bound=1)
flags.DEFINE_integer("sparse_mem_repeats", 1, "Memory subprocesses per "
                     "sparse configuration (one takes up to a minute).",
                     lower_bound=1)
flags.DEFINE_integer("child_timeout", 600, "Seconds allowed to one memory "
                     "subprocess.", lower_bound=1)
flags.DEFINE_string("out", None, "Optional output file: .json for JSON, "
                    "anything else for the markdown table.")
flags.DEFINE_string("child_config", None, "Internal: 'shape:impl:xla', run "
                    "one memory measurement and print it as JSON.")


# -- layers and steps --------------------------------------------------------


def build_layer(shape_name, implementation):
  """(built layer, input shape with batch) for a shape and implementation."""
  from tfbio import layers  # pylint: disable=g-import-not-at-top

  hwc, filters, kernel, stride, padding, _ = SHAPES[shape_name]
  if implementation == "conv":
    layer = layers.Conv2D(filters, kernel, strides=stride, padding=padding,
                          feedback=FLAGS.feedback, seed=FLAGS.seed)
  else:
    layer = layers.LocallyConnected2D(
        filters, kernel, strides=stride, padding=padding,
        implementation=implementation, feedback=FLAGS.feedback,
        seed=FLAGS.seed)
  input_shape = (FLAGS.batch_size,) + hwc
  layer.build(input_shape)
  return layer, input_shape


def analytic_bytes(shape_name, implementation, layer, step_minimum=False):
  """float32 bytes of kernel + bias + input + output (+ a stored ``B``).

  With ``step_minimum``, what one forward + backward step cannot do without:
  those, plus the gradients of the kernel, bias, input and output.
  """
  from tfbio.utils.geometry import conv_output_length  # pylint: disable=g-import-not-at-top

  (h, w, c), filters, kernel, stride, padding, _ = SHAPES[shape_name]
  out_h = conv_output_length(h, kernel, stride, padding)
  out_w = conv_output_length(w, kernel, stride, padding)
  taps = kernel * kernel * c
  if implementation == "conv":
    weights = taps * filters + filters
  else:
    weights = out_h * out_w * taps * filters + out_h * out_w * filters
  # Other float32 weights: a stored feedback kernel (fa's B), masks, ...
  known = {id(layer.kernel)} | ({id(layer.bias)} if layer.bias is not None
                                else set())
  extra = sum(int(v.numpy().size) for v in layer.weights
              if id(v) not in known and v.dtype == "float32")
  activations = FLAGS.batch_size * (h * w * c + out_h * out_w * filters)
  if step_minimum:
    return 4 * (2 * weights + extra + 2 * activations)
  return 4 * (weights + extra + activations)


def make_step(layer, jit_compile):
  """Compiled forward + backward: loss and grads w.r.t. input and variables."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  variables = layer.trainable_variables

  @tf.function(jit_compile=jit_compile)
  def step(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = layer(x, training=True)
    # d sum(y**2) / dy = 2y, given as the output gradient: differentiating
    # the sum would make Grappler fold its ones(y.shape) into an output-sized
    # constant that stays allocated and counts against every form's peak.
    grads = tape.gradient(y, [x] + variables, output_gradients=2.0 * y)
    return tf.reduce_sum(tf.square(y)), grads

  return step


def random_input(input_shape):
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(FLAGS.seed)
  return tf.constant(rng.standard_normal(input_shape), tf.float32)


def run_steps(step, x, n):
  """Runs ``n`` steps and waits for the last; returns (seconds, last loss)."""
  start = time.perf_counter()
  for _ in range(n):
    # Drop the previous step's results first: else its gradients stay alive
    # while the next step runs, and the peak counts two steps' worth.
    loss = grads = None
    loss, grads = step(x)
  loss = float(loss)  # Blocks until the device has finished.
  _ = [g.shape for g in grads]
  return time.perf_counter() - start, loss


# -- memory (one configuration per subprocess) --------------------------------


def max_rss_bytes():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux KiB.


def reset_peak_rss():
  """Resets the peak RSS (Linux >= 4.0); False where that is not possible."""
  try:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
      f.write("5")
    return True
  except OSError:
    return False


def child_main(config):
  """Measures one configuration in this (fresh) process; prints JSON."""
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  shape_name, implementation, xla = config.split(":")
  keras.utils.set_random_seed(FLAGS.seed)
  layer, input_shape = build_layer(shape_name, implementation)
  x = random_input(input_shape)
  step = make_step(layer, xla == "on")
  # From here ru_maxrss is the current RSS: the weight initializers' and the
  # input's temporaries drop out of the baseline.
  can_reset = reset_peak_rss()
  baseline = max_rss_bytes()
  bfc = os.environ.get("TF_CPU_ALLOCATOR_USE_BFC") == "true"
  if bfc:
    tf.config.experimental.reset_memory_stats("CPU:0")

  first_s, loss = run_steps(step, x, 1)
  after_first = max_rss_bytes()
  can_reset = can_reset and reset_peak_rss()
  _, loss = run_steps(step, x, FLAGS.mem_steps)
  after_steps = max_rss_bytes()
  peak = max(after_first, after_steps)
  alloc_peak = (tf.config.experimental.get_memory_info("CPU:0")["peak"]
                if bfc else None)
  result = {
      "alloc_peak_bytes": alloc_peak,
      "step_minimum_bytes": analytic_bytes(shape_name, implementation, layer,
                                           step_minimum=True),
      "shape": shape_name, "implementation": implementation, "xla": xla,
      "baseline_bytes": baseline, "peak_bytes": peak,
      "increment_bytes": peak - baseline,
      "first_step_peak_bytes": after_first,
      "steady_increment_bytes": (after_steps - baseline if can_reset
                                 else None),
      "analytic_bytes": analytic_bytes(shape_name, implementation, layer),
      "first_step_s": first_s, "loss": loss,
  }
  print(CHILD_MARK + json.dumps(result), flush=True)


def measure_memory_once(shape_name, implementation, xla):
  """Runs :func:`child_main` in a fresh interpreter; returns its dict."""
  cmd = [sys.executable, os.path.abspath(__file__),
         f"--child_config={shape_name}:{implementation}:{xla}"]
  for name in ("feedback", "batch_size", "seed", "mem_steps"):
    cmd.append(f"--{name}={FLAGS[name].value}")
  start = time.perf_counter()
  env = dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC="true")
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                        timeout=FLAGS.child_timeout, env=env)
  lines = [l for l in proc.stdout.splitlines() if l.startswith(CHILD_MARK)]
  if proc.returncode != 0 or not lines:
    raise RuntimeError(f"Memory subprocess {shape_name}:{implementation}:"
                       f"{xla} failed (exit {proc.returncode}):\n"
                       f"{proc.stderr[-4000:]}")
  result = json.loads(lines[-1][len(CHILD_MARK):])
  steady = result["steady_increment_bytes"]
  logging.info("memory %s xla=%s %s: peak %.0f MiB, increment %.1f MiB, "
               "steady %s MiB, analytic %.1f MiB; first step %.1f s "
               "(subprocess %.0f s)", shape_name, xla, implementation,
               result["peak_bytes"] / MIB, result["increment_bytes"] / MIB,
               "n/a" if steady is None else f"{steady / MIB:.1f}",
               result["analytic_bytes"] / MIB, result["first_step_s"],
               time.perf_counter() - start)
  return result


def measure_memory(shape_name, implementation, xla):
  """The run with the median increment over the repeats, all increments."""
  repeats = (FLAGS.sparse_mem_repeats if implementation == "sparse"
             else FLAGS.mem_repeats)
  runs = sorted((measure_memory_once(shape_name, implementation, xla)
                 for _ in range(repeats)),
                key=lambda r: r["increment_bytes"])
  result = dict(runs[(len(runs) - 1) // 2])
  result["increment_runs_bytes"] = [r["increment_bytes"] for r in runs]
  return result


# -- timing ------------------------------------------------------------------


def time_config(shape_name, implementations, jit_compile):
  """Per-round ms/step of each implementation at one (shape, xla)."""
  import keras  # pylint: disable=g-import-not-at-top

  xla = "on" if jit_compile else "off"
  steps = {}
  for name in implementations:
    keras.utils.clear_session()
    keras.utils.set_random_seed(FLAGS.seed)
    layer, input_shape = build_layer(shape_name, name)
    steps[name] = make_step(layer, jit_compile)
  x = random_input(input_shape)
  n_steps = {name: FLAGS.sparse_steps if name == "sparse" else FLAGS.steps
             for name in implementations}

  for name in implementations:
    seconds, loss = run_steps(steps[name], x, FLAGS.warmup)
    logging.info("%s xla=%s %s: warmup %d steps in %.1f s (loss %.4g)",
                 shape_name, xla, name, FLAGS.warmup, seconds, loss)

  per_round = {name: [] for name in implementations}
  for r in range(FLAGS.rounds):
    shift = r % len(implementations)
    for name in implementations[shift:] + implementations[:shift]:
      seconds, _ = run_steps(steps[name], x, n_steps[name])
      per_round[name].append(1000.0 * seconds / n_steps[name])
    logging.info("%s xla=%s round %d/%d: %s", shape_name, xla, r + 1,
                 FLAGS.rounds, ", ".join(
                     f"{n} {per_round[n][-1]:.1f} ms" for n in implementations))
  del steps
  return per_round


# -- report ------------------------------------------------------------------


def summarize(timings, memory):
  """One row per (shape, xla, implementation)."""
  rows = []
  for (shape_name, xla), per_round in timings.items():
    medians = {n: statistics.median(t) for n, t in per_round.items()}
    sparse_over_dense = (medians["sparse"] / medians["dense"]
                         if "sparse" in medians and "dense" in medians
                         else None)
    for name, median in medians.items():
      row = {
          "shape": shape_name, "xla": xla, "implementation": name,
          "median_ms": median, "ratio_to_conv": median / medians["conv"],
          "sparse_over_dense": (sparse_over_dense if name != "conv"
                                else None),
          "rounds_ms": per_round[name],
      }
      mem = memory.get((shape_name, name, xla))
      if mem:
        row.update({k: v for k, v in mem.items()
                    if k not in ("shape", "implementation", "xla")})
        row["increment_over_analytic"] = (mem["increment_bytes"]
                                          / mem["analytic_bytes"])
        row["alloc_over_minimum"] = (
            None if mem["alloc_peak_bytes"] is None
            else mem["alloc_peak_bytes"] / mem["step_minimum_bytes"])
      rows.append(row)
  return rows


def markdown_table(rows):
  """The table; the dense rows' misses of the issue's targets are marked."""
  def mib(value):
    return "n/a" if value is None else f"{value / MIB:.1f}"

  lines = ["| shape | xla | implementation | median ms (fwd+bwd) | ratio to "
           "conv | sparse / dense | peak RSS MiB | increment MiB | analytic "
           "MiB | increment / analytic | allocator peak MiB | step minimum "
           "MiB | peak / minimum |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
  for row in rows:
    dense = row["implementation"] == "dense"
    # Targets of the dense and offsets forms: <= 3x conv, peak <= 1.5x min.
    lc = row["implementation"] in ("dense", "offsets")
    ratio = f"{row['ratio_to_conv']:.2f}"
    if lc and row["ratio_to_conv"] > 3.0:
      ratio += " (> 3)"
    sod = row["sparse_over_dense"]
    sod_text = "—" if sod is None else f"{sod:.1f}"
    if dense and sod is not None and sod < 10.0:
      sod_text += " (< 10)"
    if "peak_bytes" in row:
      over = f"{row['increment_over_analytic']:.2f}"
      if dense and row["increment_over_analytic"] > 1.5:
        over += " (> 1.5)"
      alloc = row["alloc_over_minimum"]
      alloc_text = "n/a" if alloc is None else f"{alloc:.2f}"
      if lc and alloc is not None and alloc > 1.5:
        alloc_text += " (> 1.5)"
      memory = (f"{mib(row['peak_bytes'])} | {mib(row['increment_bytes'])} | "
                f"{mib(row['analytic_bytes'])} | {over} | "
                f"{mib(row['alloc_peak_bytes'])} | "
                f"{mib(row['step_minimum_bytes'])} | {alloc_text}")
    else:
      memory = "— | — | — | — | — | — | —"
    lines.append(f"| {row['shape']} | {row['xla']} | {row['implementation']} "
                 f"| {row['median_ms']:.2f} | {ratio} | {sod_text} | "
                 f"{memory} |")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if FLAGS.child_config:
    child_main(FLAGS.child_config)
    return
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tfbio  # pylint: disable=g-import-not-at-top

  unknown = [s for s in FLAGS.shapes if s not in SHAPES]
  if unknown:
    raise app.UsageError(f"Unknown shapes {unknown}; known: {tuple(SHAPES)}")
  unknown = [i for i in FLAGS.implementations if i not in IMPLEMENTATIONS]
  if unknown:
    raise app.UsageError(f"Unknown implementations {unknown}; known: "
                         f"{IMPLEMENTATIONS}")
  tfbio.feedback.get(FLAGS.feedback)  # Fails early on an unknown name.
  implementations = ["conv"] + [i for i in dict.fromkeys(
      FLAGS.implementations) if i != "conv"]
  xla_modes = {"both": [False, True], "on": [True], "off": [False]}[FLAGS.xla]
  logging.info("TensorFlow %s, devices %s, feedback %s, batch %d",
               tf.__version__,
               [d.name for d in tf.config.list_logical_devices()],
               FLAGS.feedback, FLAGS.batch_size)

  configs = []
  for shape_name in FLAGS.shapes:
    for jit_compile in xla_modes:
      names = [n for n in implementations
               if not (jit_compile and n == "sparse")]
      if jit_compile and "sparse" in implementations:
        logging.info("%s xla=on: skipping sparse (not XLA-compilable)",
                     shape_name)
      configs.append((shape_name, jit_compile, names))

  memory = {}
  if FLAGS.memory:
    for shape_name, jit_compile, names in configs:
      xla = "on" if jit_compile else "off"
      for name in names:
        memory[(shape_name, name, xla)] = measure_memory(shape_name, name, xla)

  timings = {}
  for shape_name, jit_compile, names in configs:
    logging.info("Timing %s (%s), xla=%s: %s", shape_name,
                 SHAPES[shape_name][-1], jit_compile, names)
    timings[(shape_name, "on" if jit_compile else "off")] = time_config(
        shape_name, names, jit_compile)

  rows = summarize(timings, memory)
  table = markdown_table(rows)
  print(table)
  if FLAGS.out:
    with open(FLAGS.out, "w", encoding="utf-8") as f:
      if FLAGS.out.endswith(".json"):
        flag_values = {k: FLAGS[k].value for k in (
            "shapes", "implementations", "feedback", "xla", "steps",
            "sparse_steps", "rounds", "warmup", "batch_size", "seed",
            "mem_steps", "mem_repeats", "sparse_mem_repeats")}
        json.dump({"flags": flag_values,
                   "shapes": {k: v[-1] for k, v in SHAPES.items()},
                   "rows": rows}, f, indent=1)
      else:
        f.write(table + "\n")
    logging.info("Wrote %s", FLAGS.out)


if __name__ == "__main__":
  app.run(main)
