r"""Training-step time of tfbio against biotorch (PyTorch) on the same models.

biotorch (Sanfiz & Akrout 2021, the PyTorch library of feedback-alignment
rules; ``pip install biotorch``) and tfbio train the same networks by the
same rules; this benchmark times one training step of both on the same
cores:

* models: ``resnet20`` (tfbio's registry ``resnet20``, biotorch's
  ``models/small_resnet.py`` ``resnet20``), ``le_net_mnist`` (32x32x1) and
  ``le_net_cifar`` (32x32x3) (tfbio's ``tfbio.models.le_net``, biotorch's
  ``models/le_net.py``);
* rules: biotorch's modes ``bp`` (its ``backpropagation``), ``fa``, ``usf``,
  ``brsf``, ``frsf``, ``dfa``; tfbio runs each as ``configs/biotorch.py``
  maps it (docs/algorithms.md §1.1, §9): ``bp``, ``fa``, ``ss:scale=glorot``,
  ``brsf:magnitude=glorot``, ``frsf:magnitude=glorot``, and DFA as
  ``tfbio.dfa.DFAModel(network, block_outputs="kernel_inputs",
  feedback_structure="kernel")`` -- biotorch's DFA layers exactly. On the
  ResNet-20 that form is refused (``feedback_structure="kernel"`` needs every
  block output read by one kernel layer; a residual unit's input is read by
  its first convolution and by its addition), so tfbio's ResNet-20 DFA is the
  default block-wise DFA (``block_outputs=None``: one ``B`` per residual
  unit; the table says so), a different rule from biotorch's per-layer DFA
  on the same network. biotorch's DFA runs on its ResNet-20 as on the LeNets
  (PyTorch 2.13 warns, on all three, that the module backward hooks its DFA
  layers rely on, ``register_backward_hook``, are deprecated and may miss
  some ``grad_input`` when a forward has several autograd nodes).

One step: forward, backward (the rule's), SGD with momentum 0.9 (no weight
decay), batch 64 of fixed standard-normal inputs and random labels (the same
shapes in both; each framework draws its own from ``--seed``), softmax
cross-entropy. tfbio: ``bench/step_time.py``'s models and compiled
``tf.function`` step without XLA (``build_model``, ``make_train_step``); DFA:
``DFAModel.train_step`` compiled as a ``tf.function``. biotorch: its
``BioModule`` models and its training loop's step (``bench/peer_worker.py``).

Each framework runs in its own worker process (tfbio under ``.venv/bin/python``,
biotorch under ``.venv-peer/bin/python``, the side venv ``make bench-peer``
builds), both with the same thread counts: ``--threads`` intra-op threads
(torch ``set_num_threads``; TensorFlow's intra-op pool) and
``--inter_threads`` inter-op threads (torch ``set_num_interop_threads``;
TensorFlow's inter-op pool), by default 2 and 1: every core for each op's
kernels, and one op at a time (PyTorch's eager loop runs one op at a time
anyway). Every cell (framework, model, rule) is built and run for
``--warmup`` untimed steps (tracing, allocation), then ``--rounds`` rounds
time ``--steps`` consecutive steps of every cell, both frameworks
interleaved, in an order rotated from round to round; a cell's figure is the
median over rounds of ms/step. Ratios: each rule's figure over its own
framework's ``bp``, and tfbio's over biotorch's. A cell that a framework
cannot run is n/a, with the reason.

    make bench-peer            # builds .venv-peer, the full default run
    .venv/bin/python bench/peer_biotorch.py --steps=2 --rounds=1 --warmup=1 \
        --models=le_net_mnist --rules=bp,fa,dfa --out=/tmp/peer.md   # smoke

Writes the table and the machine into ``--out`` (default
``docs/results/performance.md``) as its own section between
``<!-- peer:start -->`` and ``<!-- peer:end -->``, replacing that section
and keeping the rest of the file (``bench/report.py`` keeps this section
when it rewrites the file); ``--out=`` prints only.
"""

import collections
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import peer_worker  # pylint: disable=g-import-not-at-top,wrong-import-position

MODELS = tuple(peer_worker.BIOTORCH_MODELS)
RULES = tuple(peer_worker.BIOTORCH_MODES)
FRAMEWORKS = ("tfbio", "biotorch")
# Networks with residual additions: tfbio's DFA there is block-wise.
RESIDUAL_MODELS = ("resnet20",)
START = "<!-- peer:start -->"
END = "<!-- peer:end -->"


# -- the performance page's peer section --------------------------------------


def peer_section(text):
  """The peer section of a page (markers included), or "" if it has none."""
  start, end = text.find(START), text.find(END)
  if start < 0 or end < start:
    return ""
  return text[start:end + len(END)]


def with_peer_section(text, section):
  """``text`` with its peer section replaced by ``section``.

  Args:
    text: a markdown page (may be empty).
    section: the new section, markers included (see :func:`peer_section`).

  Returns:
    The page: the old section replaced in place, or ``section`` appended
    after a blank line when the page has none; the rest unchanged.
  """
  old = peer_section(text)
  if old:
    return text.replace(old, section, 1)
  if not text.strip():
    return section + "\n"
  return text.rstrip("\n") + "\n\n" + section + "\n"


# -- the tfbio worker ----------------------------------------------------------


class TfbioWorker:
  """tfbio's cells: ``bench/step_time.py``'s models and compiled steps."""

  def __init__(self):
    self.cells = {}
    self.config = None

  def setup(self, request):
    """Parses step_time's flags, sets the thread pools; returns versions."""
    import step_time  # pylint: disable=g-import-not-at-top

    step_time.FLAGS([
        "step_time", f"--batch_size={request['batch_size']}",
        f"--seed={request['seed']}",
        f"--learning_rate={request['learning_rate']}",
        f"--momentum={request['momentum']}"])
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from tfbio.experiments import machine  # pylint: disable=g-import-not-at-top

    tf.config.threading.set_intra_op_parallelism_threads(request["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(
        request["inter_threads"])
    self.config = request
    return {"versions": f"tfbio {peer_worker.distribution_version('tfbio')}",
            "machine": machine.machine()}

  def build(self, request):
    """The model under the rule's tfbio form (configs/biotorch.py)."""
    import keras  # pylint: disable=g-import-not-at-top
    import step_time  # pylint: disable=g-import-not-at-top
    from tfbio.train import run  # pylint: disable=g-import-not-at-top

    model_name, rule = peer_worker.cell_key(request)
    config = run.load_config(
        os.path.join(ROOT, "configs", f"biotorch.py:algo={rule}"))
    keras.utils.clear_session()
    keras.utils.set_random_seed(self.config["seed"])
    model, shape = step_time.build_model(
        model_name, step_time.algorithm_spec(config.feedback))
    if shape != peer_worker.INPUT_SHAPES[model_name]:
      raise ValueError(f"tfbio's {model_name} takes {shape}, biotorch's "
                       f"{peer_worker.INPUT_SHAPES[model_name]}")
    x, y = step_time.random_batch(shape)
    if config.dfa.enabled:
      step = self._dfa_step(model, config, model_name)
    else:
      step = step_time.make_train_step(model, jit_compile=False)
    self.cells[(model_name, rule)] = lambda: step(x, y)
    return {}

  def _dfa_step(self, network, config, model_name):
    """``DFAModel.train_step`` as a compiled ``tf.function`` of (x, y)."""
    import keras  # pylint: disable=g-import-not-at-top
    import step_time  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from tfbio import dfa  # pylint: disable=g-import-not-at-top
    from tfbio.train import config as config_lib  # pylint: disable=g-import-not-at-top

    d = config.dfa
    cut = {"block_outputs": config_lib.dfa_block_outputs(d),
           "feedback_structure": d.feedback_structure}
    if model_name in RESIDUAL_MODELS:  # Block-wise DFA (the defaults).
      cut = {"block_outputs": None, "feedback_structure": "dense"}
    model = dfa.DFAModel(network, feedback_scale=d.feedback_scale,
                         feedback_density=d.feedback_density,
                         seed=int(config.seed), **cut)
    model.compile(optimizer=step_time.make_optimizer(),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True), jit_compile=False)
    model.optimizer.build(model.dfa_variables)

    @tf.function(jit_compile=False)
    def train_step(x, y):
      return model.train_step((x, y))["loss"]

    return train_step

  def run(self, request):
    """Times ``steps`` training steps of a built cell."""
    seconds, loss = peer_worker.time_steps(
        self.cells[peer_worker.cell_key(request)], request["steps"])
    return {"seconds": seconds, "loss": loss}


# -- the driver ----------------------------------------------------------------


class Worker:
  """A worker process and its JSON-lines channel (``bench/peer_worker.py``)."""

  def __init__(self, name, command, log_path):
    self.name = name
    self.log_path = log_path
    self._log = open(log_path, "w", encoding="utf-8")  # pylint: disable=consider-using-with
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
        command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=self._log, text=True, env=env)

  def ask(self, **request):
    """Sends a request, returns the reply dict; raises if the worker died."""
    self.proc.stdin.write(json.dumps(request) + "\n")
    self.proc.stdin.flush()
    line = self.proc.stdout.readline()
    if not line:
      self._log.flush()
      with open(self.log_path, encoding="utf-8") as f:
        tail = "".join(f.readlines()[-15:])
      raise RuntimeError(f"the {self.name} worker exited (code "
                         f"{self.proc.wait()}); its log ends:\n{tail}")
    return json.loads(line)

  def close(self):
    """Asks the worker to quit (kills it after 60 s) and closes its log."""
    if self.proc.poll() is None:
      try:
        self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
      except (OSError, subprocess.TimeoutExpired):
        self.proc.kill()
    self._log.close()


def worker_commands(tfbio_python, peer_python):
  """The command line of each framework's worker."""
  here = os.path.join(ROOT, "bench")
  return {
      "tfbio": [tfbio_python, os.path.join(here, "peer_biotorch.py"),
                "--worker=tfbio"],
      "biotorch": [peer_python, os.path.join(here, "peer_worker.py")],
  }


def measure(workers, models, rules, settings, steps, rounds, warmup):
  """Builds, warms up and times every cell in interleaved rounds.

  Args:
    workers: ``{framework: Worker}``.
    models: model names (of MODELS).
    rules: rule names (of RULES).
    settings: the ``setup`` request's fields.
    steps: timed steps per cell per round.
    rounds: rounds.
    warmup: untimed steps per cell before the rounds.

  Returns:
    ``(per_round, errors, info)``: ``{cell: [ms/step, ...]}``, ``{cell:
    reason}`` for the cells a framework cannot run and ``{framework: setup
    reply}``; a cell is ``(framework, model, rule)``.
  """
  info = {}
  for name, worker in workers.items():
    reply = worker.ask(cmd="setup", **settings)
    if not reply["ok"]:
      raise RuntimeError(f"{name} setup failed: {reply['error']}")
    info[name] = reply
  cells, errors = [], {}
  for model in models:
    for rule in rules:
      for framework in FRAMEWORKS:
        cell = (framework, model, rule)
        start = time.perf_counter()
        reply = workers[framework].ask(cmd="build", model=model, rule=rule)
        if reply["ok"]:
          reply = workers[framework].ask(cmd="run", model=model, rule=rule,
                                         steps=warmup)
        if not reply["ok"]:
          errors[cell] = reply["error"]
          print(f"{framework} {model} {rule}: n/a ({reply['error']})",
                file=sys.stderr)
          continue
        cells.append(cell)
        print(f"{framework} {model} {rule}: built, {warmup} warm-up steps in "
              f"{time.perf_counter() - start:.1f} s (loss "
              f"{reply['loss']:.4g})", file=sys.stderr)
  per_round = collections.defaultdict(list)
  for r in range(rounds):
    shift = r % len(cells) if cells else 0
    for cell in cells[shift:] + cells[:shift]:
      if cell in errors:
        continue
      framework, model, rule = cell
      reply = workers[framework].ask(cmd="run", model=model, rule=rule,
                                     steps=steps)
      if not reply["ok"]:
        errors[cell] = reply["error"]
        continue
      per_round[cell].append(1000.0 * reply["seconds"] / steps)
    print(f"round {r + 1}/{rounds} done", file=sys.stderr)
  return dict(per_round), errors, info


def summarize(per_round, errors, models, rules):
  """Table rows: per (model, rule), each framework's median and ratios."""
  medians = {cell: statistics.median(t) for cell, t in per_round.items()
             if cell not in errors}
  rows = []
  for model in models:
    for rule in rules:
      row = {"model": model, "rule": rule, "notes": []}
      for framework in FRAMEWORKS:
        ms = medians.get((framework, model, rule))
        bp = medians.get((framework, model, "bp"))
        row[framework] = ms
        row[framework + "_ratio"] = ms / bp if ms and bp else None
        if (framework, model, rule) in errors:
          row["notes"].append(f"{framework} n/a: "
                              f"{errors[(framework, model, rule)]}")
      row["tfbio_vs_biotorch"] = (row["tfbio"] / row["biotorch"]
                                  if row["tfbio"] and row["biotorch"]
                                  else None)
      if rule == "dfa" and model in RESIDUAL_MODELS:
        row["notes"].append("tfbio: block-wise DFA (one B per residual "
                            "unit); biotorch: its per-layer DFA")
      rows.append(row)
  return rows


def markdown_table(rows):
  """The rows as a markdown table; n/a where a figure is missing."""

  def fmt(value, digits):
    return "n/a" if value is None else f"{value:.{digits}f}"

  lines = ["| model | rule | tfbio ms/step | tfbio ratio to bp | "
           "biotorch ms/step | biotorch ratio to bp | tfbio / biotorch | "
           "notes |",
           "|---|---|---:|---:|---:|---:|---:|---|"]
  for row in rows:
    ratio = fmt(row["tfbio_vs_biotorch"], 3)
    if row["tfbio_vs_biotorch"] is not None and row["tfbio_vs_biotorch"] > 1:
      ratio += " (> 1)"
    lines.append(
        f"| {row['model']} | {row['rule']} | {fmt(row['tfbio'], 2)} | "
        f"{fmt(row['tfbio_ratio'], 3)} | {fmt(row['biotorch'], 2)} | "
        f"{fmt(row['biotorch_ratio'], 3)} | {ratio} | "
        f"{'; '.join(row['notes'])} |")
  return "\n".join(lines)


def section_text(table, info, command, minutes, threads, inter_threads):
  """The peer section of docs/results/performance.md, markers included."""
  now = datetime.datetime.now(datetime.timezone.utc)
  return f"""{START}
## tfbio vs biotorch (PyTorch): the same models and rules

Written by `{command}` ({minutes:.1f} min) on {now:%Y-%m-%d %H:%M UTC},
machine: {info['tfbio']['machine']}; {info['tfbio']['versions']};
{info['biotorch']['versions']}. Each framework in its own process with
{threads} intra-op and {inter_threads} inter-op threads; one training step
(forward, the rule's backward, SGD momentum 0.9), batch 64, random data of
the same shapes; median ms/step over interleaved rounds, warm-up excluded.
tfbio: `bench/step_time.py`'s `tf.function` step without XLA (DFA:
`DFAModel.train_step` in a `tf.function`); biotorch: `BioModule` models,
its training loop's step. Rules as `configs/biotorch.py` maps biotorch's
modes: `usf` = `ss:scale=glorot`, `brsf` = `brsf:magnitude=glorot`, `frsf` =
`frsf:magnitude=glorot`, `dfa` = `DFAModel(block_outputs="kernel_inputs",
feedback_structure="kernel")` (biotorch's DFA layers; ResNet-20: block-wise
DFA, see the notes). Goal: tfbio / biotorch ≤ 1.0 (marked where missed).

{table}
{END}"""


def _define_flags():
  """Flags, only when run as the driver."""
  from absl import flags  # pylint: disable=g-import-not-at-top

  flags.DEFINE_list("models", list(MODELS), f"Models, from {MODELS}.")
  flags.DEFINE_list("rules", list(RULES), f"Rules (biotorch's modes), from "
                    f"{RULES}; bp is always added as the reference.")
  flags.DEFINE_integer("steps", 5, "Timed steps per cell per round.",
                       lower_bound=1)
  flags.DEFINE_integer("rounds", 10, "Rounds; the median over rounds is "
                       "reported.", lower_bound=1)
  flags.DEFINE_integer("warmup", 3, "Untimed steps per cell first.",
                       lower_bound=1)
  flags.DEFINE_integer("threads", 2, "Intra-op threads of both frameworks.",
                       lower_bound=1)
  flags.DEFINE_integer("inter_threads", 1, "Inter-op threads of both "
                       "frameworks.", lower_bound=1)
  flags.DEFINE_integer("seed", 0, "Seed of the weights and the data.")
  flags.DEFINE_float("learning_rate", 1e-3, "SGD learning rate.")
  flags.DEFINE_string("out", os.path.join("docs", "results", "performance.md"),
                      "Markdown page whose peer section is (re)written; "
                      "empty: print only.")
  flags.DEFINE_string("tfbio_python", os.path.join(".venv", "bin", "python"),
                      "Interpreter of the tfbio worker.")
  flags.DEFINE_string("peer_python", os.path.join(".venv-peer", "bin",
                                                  "python"),
                      "Interpreter of the biotorch worker (the side venv of "
                      "`make bench-peer`).")


def main(argv):
  """Starts both workers, measures, prints and writes the table."""
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top

  FLAGS = flags.FLAGS  # pylint: disable=invalid-name
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  for flag, known in (("models", MODELS), ("rules", RULES)):
    unknown = [v for v in FLAGS[flag].value if v not in known]
    if unknown:
      raise app.UsageError(f"Unknown {flag} {unknown}; known: {known}")
  rules = ["bp"] + [r for r in FLAGS.rules if r != "bp"]
  pythons = {}
  for flag in ("tfbio_python", "peer_python"):
    path = os.path.join(ROOT, FLAGS[flag].value)
    if not os.path.exists(path):
      raise app.UsageError(f"--{flag}={FLAGS[flag].value} does not exist"
                           + (" (`make bench-peer` builds it)"
                              if flag == "peer_python" else ""))
    pythons[flag] = path
  command = " ".join(["python bench/peer_biotorch.py"] + sys.argv[1:])
  settings = {"threads": FLAGS.threads, "inter_threads": FLAGS.inter_threads,
              "batch_size": 64, "seed": FLAGS.seed,
              "learning_rate": FLAGS.learning_rate, "momentum": 0.9}
  start = time.time()
  with tempfile.TemporaryDirectory() as tmp:
    commands = worker_commands(pythons["tfbio_python"],
                               pythons["peer_python"])
    workers = {}
    try:
      for name in FRAMEWORKS:
        workers[name] = Worker(name, commands[name],
                               os.path.join(tmp, f"{name}.log"))
      per_round, errors, info = measure(
          workers, FLAGS.models, rules, settings, FLAGS.steps, FLAGS.rounds,
          FLAGS.warmup)
    finally:
      for worker in workers.values():
        worker.close()
  table = markdown_table(summarize(per_round, errors, FLAGS.models, rules))
  print(table)
  if FLAGS.out:
    out = os.path.join(ROOT, FLAGS.out)
    old = ""
    if os.path.exists(out):
      with open(out, encoding="utf-8") as f:
        old = f.read()
    section = section_text(table, info, command,
                           (time.time() - start) / 60, FLAGS.threads,
                           FLAGS.inter_threads)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
      f.write(with_peer_section(old, section))
    print(f"wrote the peer section of {out}", file=sys.stderr)


if __name__ == "__main__":
  if sys.argv[1:] == ["--worker=tfbio"]:
    worker = TfbioWorker()
    peer_worker.serve({"setup": worker.setup, "build": worker.build,
                       "run": worker.run})
  else:
    from absl import app  # pylint: disable=g-import-not-at-top
    _define_flags()
    app.run(main)
