r"""tfbio-sweep: the cartesian product of config args, with a results table.

liao2016 §5 ran "the cartesian product of models (experimental conditions)
and datasets (tasks)", each at 5 learning-rate multipliers, reporting the
best validation error over epochs and runs. This binary runs such a product
of a config's ``key=value`` args, one ``tfbio-train`` subprocess per cell::

    tfbio-sweep --config=configs/liao2016.py:model=mnist \
        --axes='algo=sgd|usf_bn|rndf_bn,lr_mult=100|10|1|0.1|0.01' \
        --best_over=lr_mult --workdir=/tmp/sweep

Each cell trains ``--config``'s args plus one value per axis in
``WORKDIR/<axis>=<value>,...``; a cell whose ``metrics.json`` exists is
skipped (the sweep is resumable; an interrupted cell resumes from its own
checkpoint), a diverged or failed cell is recorded as such and the sweep
goes on. Writes ``WORKDIR/results.csv`` (one row per cell: axes, status,
best and final eval error) and ``WORKDIR/results.md``: the best eval error
minimised over the ``--best_over`` axes, rows = the first remaining axis,
columns = the others (liao2016 Table 2's layout: datasets × algorithms, best
over the learning-rate multipliers).

Random search (bartunov2018 appendix: "random searches over 60 random
configurations drawn from the relevant ranges specified in table 4")::

    tfbio-sweep --config=configs/bartunov2018.py:algo=sdtp --random=60 \
        --random_seed=0 --workdir=/tmp/search

``--random=N`` draws N configurations from the config module's
``SEARCH_SPACE`` (``{"field.path": ("log_uniform" | "uniform", low, high)
or ("choice", values)}``; a config file without one is an error), each a
cell ``trial=000``, ``trial=001``, ... trained with the drawn values as
``--config.FIELD=VALUE`` overrides. The draws are a function of
``--random_seed`` only (values rounded to 4 significant digits), so a
second invocation redraws the same trials and skips the finished ones.
With ``--axes`` too, the same N trials run inside every grid cell
(``WORKDIR/<axes>,trial=00k``). results.csv gains one column per drawn
field; results.md lists the trials sorted by best eval error.
"""

from tfbio.cli import common

from concurrent import futures  # noqa: E402
import csv  # noqa: E402
import itertools  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

_CONFIG = flags.DEFINE_string("config", None, "configs/NAME.py[:ARGS]; the "
                              "axes' key=value pairs are appended to ARGS.")
_AXES = flags.DEFINE_string("axes", None, "Comma-separated axes "
                            "'key=v1|v2|...' (config arg keys).")
_BEST_OVER = flags.DEFINE_list("best_over", [], "Axes the table minimises "
                               "over (e.g. lr_mult).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep directory.")
_STRATEGY = flags.DEFINE_string("strategy", "default", "Passed to each cell.")
_PARALLEL = flags.DEFINE_integer(
    "parallel", 1, "Cells trained at the same time (each is its own "
    "process; on a CPU machine each uses all cores, so 1-2 is best).",
    lower_bound=1)
_RANDOM = flags.DEFINE_integer(
    "random", 0, "Random search: N configurations drawn from the config "
    "module's SEARCH_SPACE (with --axes: N inside every grid cell).",
    lower_bound=0)
_RANDOM_SEED = flags.DEFINE_integer("random_seed", 0, "Seed of the "
                                    "--random draws.")
_OVERRIDES = flags.DEFINE_multi_string(
    "override", [], "Extra --config.key=value for every cell (repeatable), "
    "e.g. --override=epochs=2.")


def parse_axes(text):
  """``'a=1|2,b=x'`` → ``[("a", ["1", "2"]), ("b", ["x"])]``; ValueError."""
  axes = []
  for part in (text or "").split(","):
    if not part.strip():
      continue
    key, sep, values = part.partition("=")
    key = key.strip()
    values = [v.strip() for v in values.split("|") if v.strip()]
    if not sep or not key or not values:
      raise ValueError(f"--axes entry {part!r} is not 'key=v1|v2|...'")
    if key in [k for k, _ in axes]:
      raise ValueError(f"--axes repeats the key {key!r}")
    axes.append((key, values))
  if not axes:
    raise ValueError(f"--axes={text!r} names no axis")
  return axes


def load_search_space(config):
  """The ``SEARCH_SPACE`` dict of ``--config``'s module; ValueError."""
  path = config.partition(":")[0]
  spec = importlib.util.spec_from_file_location("tfbio_sweep_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  space = getattr(module, "SEARCH_SPACE", None)
  if not isinstance(space, dict) or not space:
    raise ValueError(f"--random needs a SEARCH_SPACE dict in {path!r}; it "
                     "has none")
  for key, domain in space.items():
    if not _valid_domain(domain):
      raise ValueError(f"SEARCH_SPACE[{key!r}] must be ('uniform'|"
                       f"'log_uniform', low, high) or ('choice', values). "
                       f"Received: {domain!r}")
  return space


def _valid_domain(domain):
  if not isinstance(domain, tuple) or not domain:
    return False
  if domain[0] == "choice":
    return len(domain) == 2 and len(domain[1]) > 0
  if domain[0] not in ("uniform", "log_uniform") or len(domain) != 3:
    return False
  low, high = domain[1], domain[2]
  return low <= high and (domain[0] == "uniform" or low > 0)


def draw_trials(space, n, seed):
  """``n`` dicts ``{field: value}``, deterministic given ``seed``."""
  rng = random.Random(seed)
  trials = []
  for _ in range(n):
    values = {}
    for key, domain in space.items():
      kind = domain[0]
      if kind == "choice":
        values[key] = domain[1][rng.randrange(len(domain[1]))]
        continue
      low, high = float(domain[1]), float(domain[2])
      if kind == "log_uniform":
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
      else:
        value = rng.uniform(low, high)
      values[key] = float(f"{value:.4g}")
    trials.append(values)
  return trials


def cell_name(cell):
  return ",".join(f"{k}={v}" for k, v in cell)


def cell_config(config, cell):
  path, sep, args = config.partition(":")
  extra = cell_name(cell)
  return f"{path}:{args},{extra}" if sep and args else f"{path}:{extra}"


def run_cell(config, cell, workdir, strategy, overrides, drawn=None):
  """Trains one cell in a subprocess; returns its results row.

  Args:
    config: ``--config`` (the cell's args are appended).
    cell: ``[(axis, value), ...]``; a ``trial`` entry is not a config arg.
    workdir: the cell's directory.
    strategy: ``--strategy`` of the cell.
    overrides: ``["key=value", ...]`` passed as ``--config.key=value``.
    drawn: ``{field: value}`` of a random trial (also overrides).
  """
  drawn = dict(drawn or {})
  row = dict(cell)
  row.update(drawn)
  overrides = list(overrides) + [f"{k}={v}" for k, v in drawn.items()]
  args = [(k, v) for k, v in cell if k != "trial"]
  metrics_path = os.path.join(workdir, "metrics.json")
  if os.path.exists(metrics_path):
    status = "done (skipped)"
  else:
    cmd = [sys.executable, "-m", "tfbio.cli.train",
           f"--config={cell_config(config, args) if args else config}",
           f"--workdir={workdir}",
           f"--strategy={strategy}"] + [f"--config.{o}" for o in overrides]
    logging.info("Cell %s: %s", cell_name(cell), " ".join(cmd))
    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = proc.stderr.strip().splitlines()
    if proc.returncode != 0:
      last = lines[-1] if lines else f"exit {proc.returncode}"
      status = "diverged" if "diverged" in last.lower() else "failed"
      logging.warning("Cell %s %s: %s", cell_name(cell), status, last)
      row.update(status=status, message=last)
      return row
    status = "done"
    logging.info("Cell %s done in %.0f s", cell_name(cell), time.time() - start)
  with open(metrics_path, encoding="utf-8") as f:
    metrics = json.load(f)
  row.update(status=status, best_eval_error=metrics["best_eval_error"],
             final_eval_error=metrics["final_eval_error"])
  return row


def markdown_table(rows, axes, best_over):
  """Best eval error, minimised over ``best_over``; rows × columns."""
  keys = [k for k, _ in axes if k not in best_over]
  values = dict(axes)
  best = {}
  for row in rows:
    key = tuple(row[k] for k in keys)
    error = row.get("best_eval_error")
    if error is not None:
      best[key] = min(best.get(key, float("inf")), float(error))
    else:
      best.setdefault(key, None)
  if not keys:
    value = min((v for v in best.values() if v is not None), default=None)
    return f"best eval error: {value}"
  row_key, col_keys = keys[0], keys[1:]
  cols = list(itertools.product(*[values[k] for k in col_keys])) or [()]
  header = [row_key] + [",".join(c) or "best eval error (%)" for c in cols]
  lines = ["| " + " | ".join(header) + " |",
           "|" + "---|" * len(header)]
  for r in values[row_key]:
    cells = []
    for c in cols:
      value = best.get((r,) + tuple(c))
      cells.append("—" if value is None else f"{value:.2f}")
    lines.append("| " + " | ".join([r] + cells) + " |")
  note = (f"\nBest eval error (%) over epochs and over {', '.join(best_over)}"
          if best_over else "\nBest eval error (%) over epochs")
  return "\n".join(lines) + note + "; — = diverged or failed.\n"


def trials_table(rows, keys):
  """Markdown rows of the cells, sorted by best eval error (failed last)."""
  def order(row):
    error = row.get("best_eval_error")
    return (error is None, float(error) if error is not None else 0.0)

  header = ["cell"] + keys + ["best eval error (%)", "final eval error (%)",
                              "status"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for row in sorted(rows, key=order):
    cells = [row["cell"]] + [str(row.get(k, "")) for k in keys]
    for key in ("best_eval_error", "final_eval_error"):
      value = row.get(key)
      cells.append("—" if value is None else f"{float(value):.2f}")
    lines.append("| " + " | ".join(cells + [row["status"]]) + " |")
  return ("\n".join(lines) + "\nBest eval error (%) over epochs; — = "
          "diverged or failed.\n")


def main(argv):
  if len(argv) > 1:
    common.fail("tfbio-sweep", f"unexpected arguments {argv[1:]}")
  for name, flag in (("--config", _CONFIG), ("--workdir", _WORKDIR)):
    if not flag.value:
      common.fail("tfbio-sweep", f"{name} is required")
  if not _AXES.value and not _RANDOM.value:
    common.fail("tfbio-sweep", "--axes or --random=N is required")
  try:
    axes = parse_axes(_AXES.value) if _AXES.value else []
    unknown = [b for b in _BEST_OVER.value if b not in dict(axes)]
    if unknown:
      raise ValueError(f"--best_over names {unknown}, not axes of --axes")
    if not os.path.isfile(_CONFIG.value.partition(":")[0]):
      raise ValueError(f"--config file {_CONFIG.value.partition(':')[0]!r} "
                       "does not exist")
    if os.path.exists(_WORKDIR.value) and not os.path.isdir(_WORKDIR.value):
      raise ValueError(f"--workdir={_WORKDIR.value!r} is not a directory")
    if "trial" in dict(axes):
      raise ValueError("--axes may not name 'trial' (the --random cells)")
    space = load_search_space(_CONFIG.value) if _RANDOM.value else {}
  except ValueError as e:
    common.fail("tfbio-sweep", e)
  os.makedirs(_WORKDIR.value, exist_ok=True)
  cells = list(itertools.product(*[[(k, v) for v in vs] for k, vs in axes]))
  trials = draw_trials(space, _RANDOM.value, _RANDOM_SEED.value)
  width = max(3, len(str(max(len(trials) - 1, 0))))
  jobs = ([(cell + ((("trial", f"{t:0{width}d}"),)), drawn)
           for cell in cells for t, drawn in enumerate(trials)]
          if trials else [(cell, {}) for cell in cells])
  logging.info("Sweep of %d cells in %s", len(jobs), _WORKDIR.value)

  def run_one(index_and_job):
    i, (cell, drawn) = index_and_job
    logging.info("[%d/%d] %s %s", i, len(jobs), cell_name(cell), drawn)
    row = run_cell(_CONFIG.value, cell,
                   os.path.join(_WORKDIR.value, cell_name(cell)),
                   _STRATEGY.value, _OVERRIDES.value, drawn)
    row["cell"] = cell_name(cell)
    return row

  with futures.ThreadPoolExecutor(_PARALLEL.value) as pool:
    rows = list(pool.map(run_one, enumerate(jobs, start=1)))
  fields = ([k for k, _ in axes] + (["trial"] + list(space) if trials else [])
            + ["status", "best_eval_error", "final_eval_error", "message"])
  with open(os.path.join(_WORKDIR.value, "results.csv"), "w", newline="",
            encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
  table = (trials_table(rows, list(space)) if trials
           else markdown_table(rows, axes, _BEST_OVER.value))
  with open(os.path.join(_WORKDIR.value, "results.md"), "w",
            encoding="utf-8") as f:
    f.write(f"# Sweep: {_CONFIG.value}\n\n{table}")
  logging.info("Wrote %s/results.md and results.csv:\n%s", _WORKDIR.value,
               table)


def run():
  app.run(main, flags_parser=common.flags_parser("tfbio-sweep"))


if __name__ == "__main__":
  run()
