"""Shared pieces of the binaries: one-line errors, exit statuses, quiet TF.

Exit statuses: 0 done; 1 a runtime error (data, work directory, lock,
divergence: :data:`USER_ERRORS` and ``TrainingDiverged``); 2 a usage error
(the command line itself: an unknown or malformed flag, a missing config
file, an unknown or mistyped config field, a config value that validation
rejects). Either way stderr ends with one line ``tfbio-<binary>: error: ...``.

TensorFlow's start-up chatter is silenced by the console scripts' launcher
(:mod:`tfbio_launcher`, before TensorFlow loads); ``--tf_log`` (or
``TFBIO_TF_LOG=1``) brings it back, with TensorFlow's own INFO lines.
"""

import logging as std_logging
import os
import sys

# Problems a user can fix: shown as one line, exit 1.
USER_ERRORS = (ValueError, OSError, KeyError)
# Exit statuses (see the module docstring).
RUNTIME_ERROR = 1
USAGE_ERROR = 2

_CONFIG_PREFIX = "--config."


def fail(program, error, status=RUNTIME_ERROR):
  """Exits with ``program: error: message`` (one line) and ``status``."""
  lines = [l.strip() for l in str(error).strip().splitlines() if l.strip()]
  message = lines[0] if lines else type(error).__name__
  if len(lines) > 1 and message.endswith(":"):
    # e.g. ml_collections' "Error whilst parsing config file:" + traceback:
    # the last line is the config's own error.
    message = f"{message} {lines[-1]}"
  sys.stderr.write(f"{program}: error: {message}\n")
  sys.exit(status)


def usage(program, error):
  """:func:`fail` with the usage status (2)."""
  fail(program, error, USAGE_ERROR)


def is_usage_error(error):
  """True for a config value that validation rejects (exit status 2)."""
  from tfbio.train import run as run_lib  # pylint: disable=g-import-not-at-top
  return isinstance(error, run_lib.ConfigError)


def fail_on(program, error):
  """:func:`fail` with the status :func:`is_usage_error` picks."""
  fail(program, error, USAGE_ERROR if is_usage_error(error) else
       RUNTIME_ERROR)


def _is_none(text):
  return text.strip() in ("None", "none")


def _swallowed_value(argv, config):
  """The ``--config.KEY`` (no ``=``) that took the next flag as its value.

  absl reads ``--config.batch_size --workdir=/tmp/x`` as batch_size =
  ``"--workdir=/tmp/x"``; only a boolean field may stand without a value.
  """
  for arg, following in zip(argv, argv[1:] + [""]):
    if not arg.startswith(_CONFIG_PREFIX) or "=" in arg:
      continue
    key = arg[len(_CONFIG_PREFIX):]
    if config is not None:
      try:
        if isinstance(_get(config, key), bool):
          continue
      except (KeyError, AttributeError, TypeError):
        pass
    if following.startswith("--") or not following:
      return arg
  return None


def _get(config, key):
  node = config
  for part in key.split("."):
    node = node[part]
  return node


def _drop_tensorflow_info(record):
  """Drops TensorFlow's own INFO lines ("Sharding callback duration: ...",
  "Using MirroredStrategy with devices ..."); its warnings stay."""
  where = record.pathname.replace(os.sep, "/")
  return record.levelno >= std_logging.WARNING or "/tensorflow/" not in where


def flags_parser(program):
  """An ``app.run`` flags parser: bad flags become one line and status 2.

  absl reports unknown flags itself, but ml_collections' ``--config`` and
  ``--config.key=value`` raise from inside flag parsing (an unknown field, a
  value of the wrong type, an error in the config file's ``get_config``) or
  later, at the config's first use (a missing config file): those become
  ``program: error: ...``. Besides ml_collections' syntax, the parser takes
  ``--config.KEY=None`` (any field may be set to None; validation judges)
  and refuses ``--config.KEY`` without a value (absl would take the next
  flag as the value).
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top

  def parse(argv):
    argv = list(argv)
    nones = [a for a in argv if a.startswith(_CONFIG_PREFIX) and "=" in a
             and _is_none(a.partition("=")[2])]
    argv = [a for a in argv if a not in nones]
    for arg in argv:
      if arg.startswith("--config=") and "config" in flags.FLAGS:
        path = arg.partition("=")[2].partition(":")[0]
        if path and not os.path.isfile(path):
          usage(program, f"--config file {path!r} does not exist")
    saved, sys.argv = sys.argv, argv  # ml_collections reads sys.argv.
    try:
      rest = flags.FLAGS(argv)
      config = None
      value = flags.FLAGS["config"].value if "config" in flags.FLAGS else None
      if value is not None and not isinstance(value, str):  # A ConfigDict.
        config = value
        config.keys()  # A config that failed to load raises here.
    except flags.Error as e:
      swallowed = _swallowed_value(argv, None)
      if swallowed:
        usage(program, f"{swallowed} needs a value: {swallowed}=VALUE")
      usage(program, e)
    except (AttributeError, KeyError) as e:
      usage(program, f"--config has no field {str(e).strip(chr(34))} (check "
                     "the spelling of --config.KEY=VALUE against the config)")
    except (ValueError, TypeError, OSError) as e:
      usage(program, f"bad --config or flag value: {e}")
    finally:
      sys.argv = saved
    swallowed = _swallowed_value(argv[1:], config)
    if swallowed:
      usage(program, f"{swallowed} needs a value: {swallowed}=VALUE (it "
            "took the next flag as its value)")
    if nones:
      if config is None:
        usage(program, f"{nones[0]}: no --config to set it in")
      from tfbio.train import run as run_lib  # pylint: disable=g-import-not-at-top
      for arg in nones:
        try:
          run_lib.set_value(config, arg.partition("=")[0][
              len(_CONFIG_PREFIX):], None)
        except ValueError as e:
          usage(program, e)
    if not flags.FLAGS["tf_log"].value:
      logging.get_absl_handler().addFilter(_drop_tensorflow_info)
      # tf_logging's own handler ("INFO:tensorflow:Using MirroredStrategy").
      std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)
    return rest

  return parse


def run(main, program, module_name):
  """``app.run(main)`` for a binary defined in module ``module_name``.

  ``--help`` shows the binary's own docstring (usage and examples) and its
  own flags (``--helpfull``: every flag, TensorFlow's and absl's included),
  also when it runs as a console script (whose main module is the script
  wrapper, not the module defining the flags); bad flags become one line.
  """
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top

  module = sys.modules[module_name]
  main_module = sys.modules["__main__"]
  if main_module is not module:
    main_module.__doc__ = module.__doc__
  for flag in flags.FLAGS.get_flags_for_module(module_name):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS["tf_log"])
  app.run(main, flags_parser=flags_parser(program))


def _define_tf_log():
  from absl import flags  # pylint: disable=g-import-not-at-top

  if "tf_log" not in flags.FLAGS:
    flags.DEFINE_bool(
        "tf_log", os.environ.get("TFBIO_TF_LOG", "") not in ("", "0"),
        "Show TensorFlow's start-up log and its INFO lines (default: "
        "silenced; also TFBIO_TF_LOG=1). --verbosity=1 adds tfbio's debug "
        "lines (e.g. pycocotools' output).")


_define_tf_log()
