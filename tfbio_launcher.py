"""The console scripts ``tfbio-train``, ``-eval``, ``-export``, ``-sweep``.

A module outside the ``tfbio`` package because ``import tfbio`` loads
TensorFlow: the binaries' logging must be set before that. By default
``TF_CPP_MIN_LOG_LEVEL=2`` (unless already set) hides TensorFlow's C++ INFO
and WARNING lines, and what TensorFlow writes while it is imported is held
back and its start-up banner dropped ("All log messages before
absl::InitializeLog() ...", "oneDNN custom operations are on ...",
"cpu_feature_guard ..."; TensorFlow 2.20+ writes them before its log level
applies). ``TF_ENABLE_ONEDNN_OPTS`` is left alone: it changes numerics, not
logging. ``--tf_log`` (or ``TFBIO_TF_LOG=1``) shows everything
(``tfbio.cli.common``).
"""

import contextlib
import importlib
import os
import re
import sys
import tempfile

# TensorFlow's start-up lines: C++ INFO/WARNING records, absl's notice and
# cpu_feature_guard's continuation line.
_BANNER = re.compile(
    r"^([IW]\d{4} |WARNING: All log messages before absl::InitializeLog\(\)"
    r"|To enable the following instructions: )")


def tf_log_requested(argv):
  """True if ``--tf_log`` (or ``TFBIO_TF_LOG=1``) asks for TF's own log."""
  if os.environ.get("TFBIO_TF_LOG", "") not in ("", "0"):
    return True
  return any(a in ("--tf_log", "-tf_log", "--tf_log=true", "--tf_log=1")
             for a in argv)


@contextlib.contextmanager
def _without_banner():
  """Holds file descriptor 2 meanwhile; replays it less :data:`_BANNER`.

  On an exception everything held is replayed (an import error stays
  visible).
  """
  sys.stderr.flush()
  saved = os.dup(2)
  held = tempfile.TemporaryFile()
  os.dup2(held.fileno(), 2)
  ok = False
  try:
    yield
    ok = True
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    held.seek(0)
    lines = held.read().decode("utf-8", "replace").splitlines(keepends=True)
    held.close()
    sys.stderr.write("".join(l for l in lines
                             if not (ok and _BANNER.match(l))))
    sys.stderr.flush()


def load(name, argv=None):
  """Imports ``tfbio.cli.<name>`` with TensorFlow's logging set first."""
  argv = sys.argv[1:] if argv is None else argv
  if tf_log_requested(argv):
    return importlib.import_module(f"tfbio.cli.{name}")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  with _without_banner():
    return importlib.import_module(f"tfbio.cli.{name}")


def train():
  return load("train").run()


def evaluate():
  return load("eval").run()


def export():
  return load("export").run()


def sweep():
  return load("sweep").run()


def _quiet_spawned_child():
  """Imports tfbio quietly in a worker process that a binary spawned.

  ``multiprocessing`` (tfbio-sweep's workers) starts a child by re-importing
  the console script as ``__mp_main__`` (which imports this module), then
  unpickles the child's task, which imports tfbio and TensorFlow: import it
  here, with the banner dropped, first.
  """
  # runpy runs the script as the temporary module "__mp_main__".
  if "__mp_main__" in sys.modules and not tf_log_requested([]):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _without_banner():
      importlib.import_module("tfbio")


_quiet_spawned_child()
