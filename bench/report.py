r"""Runs both benchmarks and writes ``docs/results/performance.md``.

One command for the performance page of the reproduction report:

    .venv/bin/python bench/report.py                     # ~8 min, 2 cores
    .venv/bin/python bench/report.py --out=/tmp/perf.md --quick   # ~2 min

It runs, each in its own subprocess (a quiet machine matters more than
anything else for these figures):

* ``bench/step_time.py --xla=off``: one training step of every feedback
  algorithm as a ratio to ``bp`` (liao2016's MNIST network and the CIFAR-stem
  ResNet-18, batch 64, graph mode; XLA is slower than plain graph mode on
  this CPU, see the README, so it is left off here);
* ``bench/locally_connected.py``: the dense ``LocallyConnected2D`` against
  the tied ``Conv2D`` and amit2019's sparse-matrix form (time ratios and
  allocator peak memory).

and writes their tables under a description of the machine (CPU model,
cores, memory, Python, TensorFlow) and the exact commands. ``--quick``
takes fewer rounds (figures noisier; for checking the pipeline). The
biotorch comparison (``bench/peer_biotorch.py``, ``make bench-peer``) is not
run here; its section of the page (between ``<!-- peer:start -->`` and
``<!-- peer:end -->``) is kept as it is.
"""

import datetime
import os
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging

import peer_biotorch
from tfbio.experiments import machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAGS = flags.FLAGS


def _define_flags():
  """Flags, only when run as a program."""
  flags.DEFINE_string("out", os.path.join("docs", "results", "performance.md"),
                      "Markdown file to write.")
  flags.DEFINE_bool("quick", False, "Fewer rounds (a pipeline check).")


def _run(script, args, out_md):
  cmd = [sys.executable, os.path.join("bench", script)] + args + [
      f"--out={out_md}"]
  shown = " ".join(["python", f"bench/{script}"] + args)
  logging.info("Running %s", shown)
  start = time.time()
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                        check=False)
  if proc.returncode != 0:
    tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
    raise SystemExit(f"bench/report.py: {shown} failed (exit "
                     f"{proc.returncode}): {tail}")
  with open(out_md, encoding="utf-8") as f:
    table = f.read().strip()
  minutes = (time.time() - start) / 60
  logging.info("%s: %.1f min", shown, minutes)
  return shown, table, minutes


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  quick = FLAGS.quick
  step_args = ["--xla=off", f"--rounds={2 if quick else 5}",
               f"--steps={2 if quick else 3}", "--warmup=2"]
  lc_args = [f"--rounds={3 if quick else 7}",
             f"--mem_repeats={1 if quick else 2}"]
  out = os.path.abspath(FLAGS.out)
  with tempfile.TemporaryDirectory() as tmp:
    step = _run("step_time.py", step_args, os.path.join(tmp, "step.md"))
    lc = _run("locally_connected.py", lc_args, os.path.join(tmp, "lc.md"))
  text = f"""# tfbio performance

Written by `python bench/report.py{' --quick' if quick else ''}` on
{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}, machine:
{machine.machine()}. Figures are medians over rounds; on a busy machine they are
noisy (run-to-run noise here is about ±5 %).

## Training step of each feedback algorithm vs back-propagation

`{step[0]}` ({step[2]:.1f} min): one full training step (forward, backward
with the algorithm's feedback kernels, SGD-momentum update), batch 64, graph
mode without XLA. Target: every algorithm ≤ 1.05× `bp` (marked where
missed). `fa` and `frfb` are the same computation; `*_p` use
`flip_prob=0.5`.

{step[1]}

## Locally connected (untied) layers vs convolution and the sparse form

`{lc[0]}` ({lc[2]:.1f} min): forward + backward, batch 64, `bp`, no XLA;
the dense `LocallyConnected2D` (tfbio's default) and the patch-free
`offsets` form against the tied `Conv2D` with the same kernel size and
amit2019's sparse-matrix form, and peak memory from TensorFlow's BFC
allocator (`TF_CPU_ALLOCATOR_USE_BFC=true`) against the step minimum
(kernel, bias, input, output and their gradients). Targets: dense ≥ 10×
faster than sparse; dense and offsets ≤ 3× the conv and peak ≤ 1.5× the
minimum (misses marked; the allocator's peak counts whole chunks, so a
kernel given a larger free chunk counts more than its size).

{lc[1]}
"""
  peer = ""
  if os.path.exists(out):  # Keep bench/peer_biotorch.py's section.
    with open(out, encoding="utf-8") as f:
      peer = peer_biotorch.peer_section(f.read())
  if peer:
    text = peer_biotorch.with_peer_section(text, peer)
  os.makedirs(os.path.dirname(out), exist_ok=True)
  with open(out, "w", encoding="utf-8") as f:
    f.write(text)
  logging.info("wrote %s", out)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
