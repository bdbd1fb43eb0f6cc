"""Grid and random searches over a config (the engine of ``tfbio-sweep``).

A grid is the cartesian product of a config's ``key=value`` args (liao2016
§5: "the cartesian product of models (experimental conditions) and datasets
(tasks)", each at several learning-rate multipliers); a random search draws
N configurations from the config module's ``SEARCH_SPACE`` (bartunov2018's
appendix: "random searches over 60 random configurations drawn from the
relevant ranges specified in table 4"); with both, the same trials run
inside every grid cell. Each cell is a :class:`tfbio.experiments.jobs.Job`
in ``WORKDIR/<axis>=<value>,...[,trial=00k]``; cells rank by their run's
primary metric (``tfbio.train.workdir.primary``: ``eval_error`` lower is
better, ``eval_AP`` higher is better).
"""

import csv
import itertools
import math
import os
import random

from tfbio.experiments import jobs as jobs_lib
from tfbio.experiments import stats
from tfbio.train import run as run_lib
from tfbio.train import workdir as workdir_lib

TRIAL = "trial"
SEED = "seed"


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
    if key == TRIAL:
      raise ValueError(f"--axes may not name {TRIAL!r} (the --random cells)")
    axes.append((key, values))
  if not axes:
    raise ValueError(f"--axes={text!r} names no axis")
  return axes


def load_search_space(config):
  """The ``SEARCH_SPACE`` dict of ``config``'s module; ValueError.

  ``{"field.path": ("log_uniform" | "uniform", low, high) or ("choice",
  values)}``.
  """
  space = getattr(run_lib.load_config_module(config), "SEARCH_SPACE", None)
  path = config.partition(":")[0]
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
  """``n`` dicts ``{field: value}``, a function of ``seed`` only.

  Values are rounded to 4 significant digits, so a second invocation redraws
  the same trials (and skips the finished ones).
  """
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
  """``[("a", "1"), ("b", "x")]`` → ``"a=1,b=x"`` (the cell's directory)."""
  return ",".join(f"{k}={v}" for k, v in cell)


def cell_config(config, cell):
  """``config`` with the cell's args appended after its ``:``."""
  args = [(k, v) for k, v in cell if k != TRIAL]
  if not args:
    return config
  path, sep, own = config.partition(":")
  extra = cell_name(args)
  return f"{path}:{own},{extra}" if sep and own else f"{path}:{extra}"


def plan(config, workdir, axes=(), trials=(), overrides=(),
         strategy="default"):
  """The jobs of a search.

  Args:
    config: ``configs/NAME.py[:ARGS]``.
    workdir: the search directory (cells below it).
    axes: :func:`parse_axes` output (may be empty with ``trials``).
    trials: :func:`draw_trials` output (may be empty with ``axes``).
    overrides: ``["key=value", ...]`` for every cell.
    strategy: each cell's ``--strategy``.

  Returns:
    ``[Job]``; each job's ``info`` holds its axes (and ``trial`` + drawn
    values) and ``cell``.
  """
  base = []
  for item in overrides:
    key, sep, value = item.partition("=")
    if not sep or not key:
      raise ValueError(f"--override {item!r} is not key=value")
    base.append((key.strip(), value.strip()))
  grid = list(itertools.product(*[[(k, v) for v in vs] for k, vs in axes]))
  width = max(3, len(str(max(len(trials) - 1, 0))))
  cells = ([(cell + ((TRIAL, f"{t:0{width}d}"),), drawn)
            for cell in grid for t, drawn in enumerate(trials)]
           if trials else [(cell, {}) for cell in grid])
  jobs = []
  for cell, drawn in cells:
    name = cell_name(cell)
    info = tuple(cell) + tuple(drawn.items()) + (("cell", name),)
    jobs.append(jobs_lib.Job(
        name=name, config=cell_config(config, cell),
        workdir=os.path.join(workdir, name),
        overrides=tuple(base) + tuple(drawn.items()), strategy=strategy,
        info=info))
  return jobs


def _mode(rows):
  modes = {r["primary_mode"] for r in rows if r.get("primary_mode")}
  if len(modes) > 1:
    raise ValueError(f"cells rank by different metrics: "
                     f"{sorted({r['primary_metric'] for r in rows})}")
  return modes.pop() if modes else "min"


def _metric_label(rows):
  names = {r["primary_metric"] for r in rows if r.get("primary_metric")}
  return names.pop() if len(names) == 1 else "eval_error"


def grid_table(rows, axes, best_over=()):
  """Markdown: the best primary metric, optimised over ``best_over``.

  Rows = the first remaining axis, columns = the others (liao2016 Table 2's
  layout: datasets × algorithms, best over the learning-rate multipliers);
  each cell names the winning ``best_over`` values.
  """
  keys = [k for k, _ in axes if k not in best_over]
  values = dict(axes)
  mode = _mode(rows)
  beats = workdir_lib.better(mode)
  best = {}
  for row in rows:
    key = tuple(row[k] for k in keys)
    value = row.get("best") if row.get("status") in jobs_lib.FINISHED else None
    if value is not None and math.isfinite(value):
      if key not in best or best[key] is None or beats(value, best[key][0]):
        best[key] = (value, {k: row[k] for k in best_over})
    else:
      best.setdefault(key, None)
  label = _metric_label(rows)
  what = f"best {label} over epochs" + (
      f" and over {', '.join(best_over)}" if best_over else "")
  if not keys:
    value = best.get((), None)
    return f"{what}: {_cell_text(value)}\n"
  row_key, col_keys = keys[0], keys[1:]
  cols = list(itertools.product(*[values[k] for k in col_keys])) or [()]
  header = [row_key] + [",".join(c) or label for c in cols]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for r in values[row_key]:
    cells = [_cell_text(best.get((r,) + tuple(c))) for c in cols]
    lines.append("| " + " | ".join([r] + cells) + " |")
  lower = "lower" if mode == "min" else "higher"
  return ("\n".join(lines) + f"\n\n{what[0].upper() + what[1:]} ({lower} is "
          "better); — = diverged or failed.\n")


def _cell_text(value):
  if value is None:
    return "—"
  number, won = value
  if not won:
    return f"{number:.4g}"
  return f"{number:.4g} ({', '.join(f'{k}={v}' for k, v in won.items())})"


def trials_table(rows, keys):
  """Markdown rows of the cells, best first (failed and diverged last)."""
  mode = _mode(rows)
  sign = 1.0 if mode == "min" else -1.0

  def order(row):
    value = row.get("best")
    ok = row.get("status") in jobs_lib.FINISHED and value is not None
    return (not ok, sign * value if ok else 0.0)

  label = _metric_label(rows)
  header = (["cell"] + list(keys)
            + [f"best {label}", f"final {label}", "status"])
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for row in sorted(rows, key=order):
    cells = [row["cell"]] + [str(row.get(k, "")) for k in keys]
    for key in ("best", "final"):
      value = row.get(key)
      cells.append("—" if value is None else f"{float(value):.4g}")
    lines.append("| " + " | ".join(cells + [row["status"]]) + " |")
  lower = "lower" if mode == "min" else "higher"
  return ("\n".join(lines) + f"\n\nBest {label} over epochs ({lower} is "
          "better); — = diverged or failed.\n")


def seed_table(rows, axes):
  """Markdown: per setting of the other axes, the primary metric over seeds.

  For a grid with a ``seed`` axis: mean ± sample std of the best and of the
  final value over the finished seeds, their count ``n``, and the seeds that
  diverged or failed (never averaged in).
  """
  keys = [k for k, _ in axes if k != SEED]
  label = _metric_label(rows)
  groups = {}
  for row in rows:
    groups.setdefault(tuple(row[k] for k in keys), []).append(row)
  header = keys + [f"best {label} (mean ± std)", f"final {label}", "n",
                   "seeds", "not finished"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for key in itertools.product(*[dict(axes)[k] for k in keys]):
    group = groups.get(tuple(key), [])
    ok = [r for r in group if r.get("status") == "ok"]
    other = [f"{r[SEED]} {r.get('status')}" for r in group
             if r.get("status") != "ok"]
    cells = [_mean_std([r["best"] for r in ok]),
             _mean_std([r["final"] for r in ok]), str(len(ok)),
             ",".join(str(r[SEED]) for r in ok), ", ".join(other) or "—"]
    lines.append("| " + " | ".join(list(key) + cells) + " |")
  lower = "lower" if _mode(rows) == "min" else "higher"
  return ("\n".join(lines) + f"\n\n{label} over seeds ({lower} is better): "
          "the best epoch and the last epoch of each run; diverged or failed "
          "seeds are listed, not averaged.\n")


def _mean_std(values):
  """``"mean ± std"`` (4 / 2 significant digits), the mean alone for one."""
  values = [float(v) for v in values if v is not None]
  if not values:
    return "—"
  if len(values) < 2:
    return f"{stats.mean(values):.4g}"
  return f"{stats.mean(values):.4g} ± {stats.std(values):.2g}"


def curves_plot(rows, axes, path, title=None):
  """PNG of the primary metric per epoch, one panel line per setting.

  Per setting of the non-seed axes: the mean over seeds (thick), a band from
  the lowest to the highest seed, and every seed as a thin line; read from
  each cell's ``history.csv``. Returns ``path``, or None without history.
  """
  from tfbio import analysis  # pylint: disable=g-import-not-at-top

  keys = [k for k, _ in axes if k != SEED]
  label = _metric_label(rows)
  curves = {}
  for row in rows:
    if row.get("status") not in jobs_lib.FINISHED:
      continue
    history = workdir_lib.read_history(row["workdir"])
    values = [workdir_lib.to_float(r.get(label)) for r in history]
    if values:
      name = ",".join(f"{k}={row[k]}" for k in keys) or "all"
      curves.setdefault(name, []).append(values)
  if not curves:
    return None
  plt = analysis.pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for i, (name, runs) in enumerate(curves.items()):
    color = plt.cm.tab10.colors[i % 10]
    n = min(len(r) for r in runs)
    epochs = list(range(1, n + 1))
    for r in runs:
      ax.plot(epochs, r[:n], color=color, alpha=0.35, linewidth=0.8)
    columns = list(zip(*[r[:n] for r in runs]))
    ax.fill_between(epochs, [min(c) for c in columns],
                    [max(c) for c in columns], color=color, alpha=0.15)
    ax.plot(epochs, [sum(c) / len(c) for c in columns], color=color,
            linewidth=2, label=f"{name} (n={len(runs)})")
  ax.set_xlabel("epoch")
  ax.set_ylabel(label)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  ax.set_title(title or f"{label} per epoch: mean over seeds, band = "
               "min–max, thin lines = seeds", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def setup_sentence(rows, axes):
  """What the finished cells trained: data, image counts, epochs, seeds.

  Read from the first finished cell's ``config.json``; "" if none.
  """
  from tfbio import data  # pylint: disable=g-import-not-at-top

  done = [r for r in rows if r.get("status") == "ok"
          and workdir_lib.is_run(r["workdir"])]
  if not done:
    return ""
  config = workdir_lib.read_config(done[0]["workdir"])
  d, o = config.data, config.optimizer
  counts = data.dataset_info(d.name, data_dir=d.data_dir)["num_examples"]
  n_train, n_eval = counts[d.train_split], counts.get(d.eval_split, 0)
  n_train = min(n_train, d.max_train_examples or n_train)
  n_eval = min(n_eval, d.max_eval_examples or n_eval)
  seeds = (dict(axes)[SEED] if SEED in dict(axes) else [str(config.seed)])
  size = f" at {d.image_size}×{d.image_size}" if d.image_size else ""
  momentum = f", momentum {o.momentum:g}" if o.name == "sgd" else ""
  return (f"Setup: {d.name}, {n_train:,} training / {n_eval:,} "
          f"{d.eval_split} images{size}; {config.model.name}, "
          f"{config.epochs} epochs of batch {config.batch_size}, {o.name} "
          f"lr {o.learning_rate * o.lr_mult:g}{momentum} (fixed, not "
          f"searched); seeds {', '.join(seeds)} ({len(seeds)} per "
          "condition).")


def check_verdict(verdict, axes):
  """ValueError unless ``verdict`` names a known verdict that ``axes`` fit."""
  from tfbio.experiments import claims  # pylint: disable=g-import-not-at-top

  if verdict not in claims.SWEEP_VERDICTS:
    raise ValueError(f"--verdict={verdict!r} is not one of "
                     f"{sorted(claims.SWEEP_VERDICTS)}")
  axis, values, _ = claims.SWEEP_VERDICTS[verdict]
  have = dict(axes).get(axis, [])
  if sorted(have) != sorted(values):
    raise ValueError(f"--verdict={verdict} needs the axis {axis}="
                     f"{'|'.join(values)}. Received: {axis}={'|'.join(have)}")


def verdict_paragraph(verdict, rows):
  """The paragraph of ``claims.SWEEP_VERDICTS[verdict]`` on the rows."""
  from tfbio.experiments import cells  # pylint: disable=g-import-not-at-top
  from tfbio.experiments import claims  # pylint: disable=g-import-not-at-top

  axis, values, paragraph = claims.SWEEP_VERDICTS[verdict]
  errors = {v: [] for v in values}
  for row in rows:
    if row.get(axis) in errors and row.get("status") in jobs_lib.FINISHED:
      errors[row[axis]].append(cells.run_error(
          {"status": row["status"], "final_eval_error": row.get("final")}))
  return paragraph(errors)


def write_results(workdir, config, rows, axes, space, best_over=(),
                  verdict=None):
  """Writes ``results.csv``, ``results.md`` (and ``curves.png``).

  Returns the markdown table. With a ``seed`` axis the table is
  :func:`seed_table`, ``curves.png`` is :func:`curves_plot` and the setup
  (:func:`setup_sentence`) follows; ``verdict`` (a name of
  ``tfbio.experiments.claims.SWEEP_VERDICTS``) adds its paragraph.
  """
  fields = ([k for k, _ in axes] + ([TRIAL] + list(space) if space else [])
            + ["status", "reused", "primary_metric", "best", "final",
               "seconds", "message"])
  with open(os.path.join(workdir, "results.csv"), "w", newline="",
            encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
  if space:
    table = trials_table(rows, list(space))
  elif SEED in dict(axes) and not best_over:
    table = seed_table(rows, axes)
    png = curves_plot(rows, axes, os.path.join(workdir, "curves.png"))
    if png:
      table += "\n![curves](curves.png)\n"
    setup = setup_sentence(rows, axes)
    if setup:
      table += f"\n{setup}\n"
  else:
    table = grid_table(rows, axes, best_over)
  if verdict:
    table += f"\n{verdict_paragraph(verdict, rows)}\n"
  with open(os.path.join(workdir, "results.md"), "w", encoding="utf-8") as f:
    f.write(f"# Sweep: {config}\n\n{table}")
  return table


def sweep(config, workdir, axes=(), random_trials=0, random_seed=0,
          best_over=(), overrides=(), strategy="default", workers=1,
          verdict=None):
  """Runs (or resumes) a search and writes its results; returns the rows.

  Args:
    config: ``configs/NAME.py[:ARGS]``.
    workdir: the search directory.
    axes: :func:`parse_axes` output.
    random_trials: N random configurations from the config's
      ``SEARCH_SPACE`` (0: none).
    random_seed: seed of the draws.
    best_over: axes the grid table optimises over.
    overrides: ``["key=value"]`` for every cell.
    strategy: each cell's ``--strategy``.
    workers: cells trained at the same time (0: in this process).
    verdict: a name of ``tfbio.experiments.claims.SWEEP_VERDICTS``: its
      paragraph is added to ``results.md`` (:func:`verdict_paragraph`).
  """
  unknown = [b for b in best_over if b not in dict(axes)]
  if unknown:
    raise ValueError(f"--best_over names {unknown}, not axes of --axes")
  if not axes and not random_trials:
    raise ValueError("--axes or --random=N is required")
  if verdict:
    check_verdict(verdict, axes)
  space = load_search_space(config) if random_trials else {}
  trials = draw_trials(space, random_trials, random_seed)
  axes = list(axes)
  jobs = plan(config, workdir, axes, trials, overrides, strategy)
  os.makedirs(workdir, exist_ok=True)
  rows = jobs_lib.run_jobs(
      jobs, workers=workers, threads=_threads(workers),
      tasks_per_worker=1 if strategy != "default" else 25)
  for job, row in zip(jobs, rows):
    row.update(dict(job.info))
  return rows, write_results(workdir, config, rows, axes, space, best_over,
                             verdict)


def _threads(workers):
  """TensorFlow threads per worker: the cores shared out (None: all)."""
  if workers <= 1:
    return None
  return max(1, (os.cpu_count() or 1) // workers)
