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
