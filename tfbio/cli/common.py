"""Shared pieces of the binaries: one-line errors and quiet TensorFlow."""

import os
import sys

# Binaries print one line per problem, not TensorFlow's C++ start-up chatter.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Problems a user can fix from the command line: shown as one line, exit 1.
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, KeyError)


def fail(program, error):
  """Exits with ``program: message`` (one line) and status 1."""
  lines = [l.strip() for l in str(error).strip().splitlines() if l.strip()]
  message = lines[0] if lines else type(error).__name__
  if len(lines) > 1 and message.endswith(":"):
    # e.g. ml_collections' "Error whilst parsing config file:" + traceback:
    # the last line is the config's own error.
    message = f"{message} {lines[-1]}"
  sys.stderr.write(f"{program}: error: {message}\n")
  sys.exit(1)


def flags_parser(program):
  """An ``app.run`` flags parser that turns bad flags into one line.

  absl reports unknown flags itself, but ml_collections' ``--config`` and
  ``--config.key=value`` raise from inside flag parsing (an unknown field, a
  value of the wrong type, an error in the config file's ``get_config``):
  those become ``program: error: ...`` and exit status 1.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top

  def parse(argv):
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      fail(program, e)
    except (AttributeError, KeyError) as e:
      fail(program, f"--config has no field {str(e).strip(chr(34))} (check "
                    "the spelling of --config.KEY=VALUE against the config)")
    except (ValueError, TypeError, OSError) as e:
      fail(program, f"bad --config or flag value: {e}")
    return None

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
  app.run(main, flags_parser=flags_parser(program))
