"""A one-line description of the machine (reports and benchmarks)."""

import os
import platform


def machine():
  """One line: CPU model, cores, memory, Python, TensorFlow."""
  cpu, mem = platform.machine(), "?"
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      cpu = next((line.split(":", 1)[1].strip() for line in f
                  if line.startswith("model name")), cpu)
    with open("/proc/meminfo", encoding="utf-8") as f:
      kib = int(next(line.split()[1] for line in f
                     if line.startswith("MemTotal")))
      mem = f"{kib / 2**20:.0f} GiB"
  except (OSError, StopIteration, ValueError):
    pass
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return (f"{cpu}, {os.cpu_count()} cores, {mem} RAM, {platform.system()}, "
          f"Python {platform.python_version()}, TensorFlow {tf.__version__} "
          f"(CPU)")
