"""biotorch's published Fashion-MNIST / MNIST table beside tfbio's runs.

The runs are two ``tfbio-sweep`` directories over ``configs/biotorch.py``
(biotorch's recipe, docs/results/biotorch/README.md):

* **selection** (``select=1``: train on the first 55,000 training images,
  validate on the last 5,000; a shortened schedule of the same shape):
  cells ``algo=<mode>,lr=<rate>``; each mode's rate is the one with the
  lowest best-epoch *validation* error (the test images are never used);
* **final** (the full recipe: 60,000 training images, the 10,000 test images
  after every epoch, as biotorch's protocol): cells ``algo=<mode>,seed=<s>``
  at the selected rates.

The table gives, per mode, biotorch's published error, tfbio's best-epoch
test error (biotorch's criterion) as mean ± std over seeds with every seed,
its final-epoch error, and the difference tfbio − biotorch with a bootstrap
95 % interval over seeds; the verdict is :func:`tfbio.experiments.stats.
equivalence` of that interval with :data:`MARGIN` (fixed before the final
runs). biotorch publishes one number per mode (no seeds, no spread), so the
interval covers tfbio's seed-to-seed variation only.
"""

import csv
import os

from tfbio.experiments import cells as cells_lib
from tfbio.experiments import jobs as jobs_lib
from tfbio.experiments import plots
from tfbio.experiments import stats
from tfbio.train import workdir as workdir_lib

# biotorch Benchmarks.md, "MNIST & Fashion-MNIST" (LeNet MNIST; top-1 error %).
BIOTORCH = {
    "fashion": {"bp": 9.2, "fa": 13.06, "usf": 9.69, "brsf": 10.02,
                "frsf": 9.61, "dfa": 12.81},
    "mnist": {"bp": 0.91, "fa": 1.7, "usf": 0.94, "brsf": 0.91, "frsf": 0.97,
              "dfa": 1.61},
}
MODES = ("bp", "fa", "usf", "brsf", "frsf", "dfa")
# "tfbio matches biotorch": the 95 % interval of (tfbio mean - biotorch) lies
# within ±MARGIN percentage points. Fixed on 2026-12-04, before any final run.
MARGIN = 1.0
RUN_FIELDS = ("role", "algo", "lr", "seed", "status", "best_eval_error",
              "final_eval_error", "best_epoch", "epochs", "seconds", "workdir")


def _parse_cell(name):
  return dict(part.split("=", 1) for part in name.split(",") if "=" in part)


def load_runs(sweep_dir, role):
  """One row per cell directory of a sweep (finished or not).

  Returns:
    ``[{"role", "algo", "lr", "seed", "status", "best_eval_error",
    "final_eval_error", "best_epoch", "epochs", "seconds", "workdir",
    "history"}]``; ``status`` is ``"missing"`` for a cell without
    ``result.json`` (not run, or still running).
  """
  rows = []
  if not os.path.isdir(sweep_dir):
    return rows
  for name in sorted(os.listdir(sweep_dir)):
    workdir = os.path.join(sweep_dir, name)
    if not os.path.isdir(workdir) or "algo=" not in name:
      continue
    cell = _parse_cell(name)
    result = jobs_lib.read_result(workdir) or {}
    history = workdir_lib.read_history(workdir)
    errors = [workdir_lib.to_float(h.get("eval_error")) for h in history]
    best_epoch = (min(range(len(errors)), key=errors.__getitem__) + 1
                  if errors else None)
    rows.append({
        "role": role, "algo": cell["algo"], "lr": cell.get("lr", ""),
        "seed": cell.get("seed", "0"),
        "status": result.get("status", "missing"),
        "best_eval_error": result.get("best_eval_error", ""),
        "final_eval_error": result.get("final_eval_error", ""),
        "best_epoch": best_epoch or "", "epochs": len(history),
        "seconds": result.get("seconds", ""), "workdir": workdir,
        "history": errors,
    })
  return rows


def _finished(row):
  return row["status"] in jobs_lib.FINISHED


def _error(row, key):
  """A finished run's error; a diverged run counts as chance (90 %)."""
  if row["status"] == "diverged":
    return cells_lib.CHANCE_ERROR
  return float(row[key])


def select_rates(selection_rows):
  """``{algo: (lr, best validation error)}``: the lowest best-epoch
  validation error of each mode's finished selection runs (a diverged run
  counts as chance); modes with no finished run are left out."""
  chosen = {}
  for row in selection_rows:
    if not _finished(row):
      continue
    err = _error(row, "best_eval_error")
    if row["algo"] not in chosen or err < chosen[row["algo"]][1]:
      chosen[row["algo"]] = (row["lr"], err)
  return chosen


def selection_table(selection_rows):
  """Markdown: best validation error per mode (rows) and rate (columns)."""
  rates = sorted({r["lr"] for r in selection_rows}, key=float, reverse=True)
  chosen = select_rates(selection_rows)
  lines = ["| mode | " + " | ".join(f"lr {r}" for r in rates)
           + " | selected |", "|---" * (len(rates) + 2) + "|"]
  for algo in MODES:
    cells = []
    for rate in rates:
      row = next((r for r in selection_rows
                  if r["algo"] == algo and r["lr"] == rate), None)
      if row is None or not _finished(row):
        cells.append("—" if row is None else row["status"])
      else:
        text = f"{_error(row, 'best_eval_error'):.2f}"
        if row["status"] == "diverged":
          text += " (diverged)"
        cells.append(text)
    if all(c == "—" for c in cells):
      continue
    pick = chosen.get(algo)
    tried = sorted((float(r["lr"]) for r in selection_rows
                    if r["algo"] == algo), reverse=True)
    edge = pick and float(pick[0]) in (tried[0], tried[-1]) and len(tried) > 1
    lines.append(f"| {algo} | " + " | ".join(cells) + " | "
                 + (f"lr {pick[0]}" + (" (grid edge)" if edge else "")
                    if pick else "—") + " |")
  return "\n".join(lines) + "\n"


def side_by_side(final_rows, data="fashion"):
  """Markdown: biotorch's error, tfbio's (best epoch and final), the
  difference with its bootstrap 95 % interval, the verdict; and the list of
  missing or diverged runs."""
  published = BIOTORCH[data]
  lines = [
      "| mode | biotorch | tfbio best epoch (mean ± std) | seeds | "
      "tfbio final epoch | tfbio − biotorch [95 % CI] | verdict (±"
      f"{MARGIN:g}) |", "|---|---|---|---|---|---|---|"]
  notes = []
  for algo in MODES:
    rows = [r for r in final_rows if r["algo"] == algo]
    done = [r for r in rows if _finished(r)]
    if not rows:
      lines.append(f"| {algo} | {published[algo]:.2f} | not run | | | | |")
      continue
    best = [_error(r, "best_eval_error") for r in done]
    final = [_error(r, "final_eval_error") for r in done]
    diverged = sum(r["status"] == "diverged" for r in done)
    diffs = [b - published[algo] for b in best]
    low, high = stats.bootstrap_ci(diffs)
    verdict = stats.equivalence(low, high, MARGIN) if len(done) >= 2 else (
        stats.INCONCLUSIVE)
    seeds = ", ".join(f"{r['seed']}: {_error(r, 'best_eval_error'):.2f}"
                      for r in done)
    interval = (f"{stats.mean(diffs):+.2f} [{low:+.2f}, {high:+.2f}]"
                if done else "—")
    lines.append(
        f"| {algo} | {published[algo]:.2f} | {stats.fmt(best, diverged)} "
        f"(n={len(done)}) | {seeds} | {stats.fmt(final)} | {interval} | "
        f"{verdict} |")
    missing = [r["seed"] for r in rows if not _finished(r)]
    if missing:
      notes.append(f"{algo}: seeds {', '.join(missing)} not finished")
  text = "\n".join(lines) + "\n"
  if notes:
    text += "\nMissing: " + "; ".join(notes) + ".\n"
  return text


def plot(final_rows, path, data="fashion"):
  """Seeds as dots over the mean per mode, biotorch's value as a diamond,
  the ±MARGIN band around it. Returns ``path`` or None without runs."""
  from tfbio import analysis  # pylint: disable=g-import-not-at-top
  published = BIOTORCH[data]
  modes = [m for m in MODES
           if any(r["algo"] == m and _finished(r) for r in final_rows)]
  if not modes:
    return None
  plt = analysis.pyplot()
  fig, ax = plt.subplots(figsize=(1.3 * len(modes) + 2, 4))
  for i, algo in enumerate(modes):
    best = [_error(r, "best_eval_error") for r in final_rows
            if r["algo"] == algo and _finished(r)]
    ax.scatter([i - 0.1] * len(best), best, color="tab:blue", s=14,
               label="tfbio seeds" if i == 0 else None, zorder=3)
    ax.hlines(stats.mean(best), i - 0.3, i + 0.1, color="tab:blue",
              linewidth=2, label="tfbio mean" if i == 0 else None)
    ax.scatter([i + 0.15], [published[algo]], marker="D", color="tab:red",
               s=30, label="biotorch (published)" if i == 0 else None,
               zorder=3)
    ax.fill_between([i + 0.02, i + 0.28], published[algo] - MARGIN,
                    published[algo] + MARGIN, color="tab:red", alpha=0.12,
                    label=f"±{MARGIN:g} margin" if i == 0 else None)
  ax.set_xticks(range(len(modes)))
  ax.set_xticklabels(modes)
  ax.set_ylabel("test error % (best epoch)")
  ax.grid(alpha=0.3, axis="y")
  ax.legend(fontsize=8)
  ax.set_title(f"LeNet MNIST on {data}: tfbio vs biotorch", fontsize=10)
  return plots.save(fig, path)


def curves(rows, path, title):
  """Validation / test error per epoch: seeds thin, mean thick, per mode."""
  from tfbio import analysis  # pylint: disable=g-import-not-at-top
  by_mode = {}
  for row in rows:
    if _finished(row) and row["history"]:
      key = row["algo"] + (f" lr {row['lr']}" if row["role"] == "selection"
                           else "")
      by_mode.setdefault(key, []).append(row["history"])
  if not by_mode:
    return None
  plt = analysis.pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for i, (name, runs) in enumerate(sorted(by_mode.items())):
    color = plt.cm.tab20.colors[i % 20]
    n = min(len(r) for r in runs)
    epochs = range(1, n + 1)
    for r in runs:
      ax.plot(epochs, r[:n], color=color, alpha=0.35, linewidth=0.7)
    ax.plot(epochs, [stats.mean(c) for c in zip(*[r[:n] for r in runs])],
            color=color, linewidth=1.8, label=f"{name} (n={len(runs)})")
  ax.set_xlabel("epoch")
  ax.set_ylabel("error %")
  ax.set_ylim(0, min(100.0, 2 * max(r[-1] for rs in by_mode.values()
                                    for r in rs)))
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, ncol=2)
  ax.set_title(title, fontsize=9)
  return plots.save(fig, path)


def write_runs_csv(rows, path):
  """Every run (selection and final) as one row of ``runs.csv``."""
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=RUN_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
      writer.writerow({**row, "workdir": os.path.basename(row["workdir"])})


SELECT_COMMAND = (
    "tfbio-sweep --config=configs/biotorch.py:select=1,epochs=20 "
    "--axes='algo=bp|fa|usf|brsf|frsf|dfa,lr=0.1|0.01|0.001' --best_over=lr "
    "--parallel=2 --workdir=docs/results/biotorch/sweeps/select")
FINAL_COMMAND = (
    "tfbio-sweep --config=configs/biotorch.py "
    "--axes='algo=bp|fa|usf|brsf|frsf|dfa,seed=0|1|2' --parallel=2 "
    "--workdir=docs/results/biotorch/sweeps/final")
REPORT_COMMAND = ("tools/biotorch_table.py")


def report(select_dir, final_dir, out_dir, data="fashion"):
  """Writes ``out_dir/{README.md, runs.csv, biotorch.png, curves_*.png}``.

  Returns the README text. Nothing is trained: the runs are read from the
  two sweep directories (unfinished cells are listed as missing).
  """
  os.makedirs(out_dir, exist_ok=True)
  selection = load_runs(select_dir, "selection")
  final = load_runs(final_dir, "final")
  write_runs_csv(selection + final, os.path.join(out_dir, "runs.csv"))
  seconds = sum(float(r["seconds"] or 0) for r in selection + final
                if _finished(r))
  parts = [
      "# biotorch's Fashion-MNIST table, side by side\n",
      "Generated by `" + REPORT_COMMAND + "` from the runs listed in "
      "`runs.csv` (nothing is trained by the report). Recipe, mode mapping "
      "and protocol: `configs/biotorch.py` (docstring) and "
      "docs/algorithms.md §1.1.\n",
      "**Rule (fixed before the final runs):** tfbio matches biotorch for a "
      f"mode if the bootstrap 95 % interval of (tfbio's mean best-epoch test "
      f"error − biotorch's published error) lies within ±{MARGIN:g} "
      "percentage point(s) (HOLDS); wholly outside: DOES NOT HOLD; else "
      "INCONCLUSIVE. biotorch publishes one number per mode, so the "
      "interval covers only tfbio's seed-to-seed spread. A diverged run "
      "counts as 90 % and is shown.\n",
      "## Learning-rate selection (validation split, never the test set)\n",
      "Train on `train[:55000]`, validate on `train[55000:]`, 20 epochs "
      "(÷10 at 10 and 15: the recipe's schedule shape, one fifth of its "
      "length), seed 0; best-epoch validation error %. Grid 0.1, 0.01, "
      "0.001 for every mode; a mode whose best rate lies on the grid's edge "
      "is also run at the next rate beyond it (×10 or ÷10), until its best "
      "rate is inside the grid or the next rate is worse or diverges (rule "
      "added on 2026-12-04 after 7 of the 15 grid runs had finished and FA's "
      "best rate was the grid's lowest, before any final run).\n",
      selection_table(selection) if selection else "No selection run yet "
      f"(`{SELECT_COMMAND}`).\n",
      "\n## Final runs (biotorch's protocol)\n",
      "60,000 training images, 100 epochs (÷10 at 50 and 75), the 10,000 "
      "test images after every epoch; biotorch's figure is the best of "
      "those epochs, the final epoch is given beside it.\n",
      side_by_side(final, data) if final else
      f"No final run yet: `{FINAL_COMMAND}` (after the rates are selected "
      "and written into `configs/biotorch.py`'s `LEARNING_RATES`).\n",
  ]
  png = plot(final, os.path.join(out_dir, "biotorch.png"), data)
  if png:
    parts.append("\n![tfbio vs biotorch](biotorch.png)\n")
  for name, rows, title in (
      ("curves_selection.png", selection,
       "selection: validation error per epoch (seed 0)"),
      ("curves_final.png", final,
       "final: test error per epoch (mean thick, seeds thin)")):
    if curves(rows, os.path.join(out_dir, name), title):
      parts.append(f"\n![{title}]({name})\n")
  parts.append(
      f"\nCompute: {seconds / 3600:.2f} worker-hours of finished runs "
      f"({sum(_finished(r) for r in selection + final)} runs; the wall "
      "clock of each run, 1-2 worker processes on 2 cores; runs of "
      "2026-12-04 shared the cores with other work and were paused while "
      "the test suite and the benchmarks ran, so this overstates the "
      "compute). To add missing runs: "
      f"`{SELECT_COMMAND}`, then `{FINAL_COMMAND}` (each skips finished "
      "cells), then the report command above.\n")
  text = "\n".join(parts)
  with open(os.path.join(out_dir, "README.md"), "w", encoding="utf-8") as f:
    f.write(text)
  return text
