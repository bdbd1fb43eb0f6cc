"""Seeds: layer seeds, the mixing rule of derived streams, epoch data order.

These rules are part of what a saved model and a committed result mean:
changing any of them changes the random feedback state a seed draws, or the
order in which an epoch reads its data.
"""

import random

# Keras initializers (and ``random.randint`` below) take seeds in
# ``[0, 2**31 - 2]``.
SEED_MODULUS = 2**31 - 1

# Number of purposes one layer seed can be mixed with (``0 <= purpose < 16``).
PURPOSES_PER_SEED = 16

# Multiplier of the run seed in :func:`epoch_seed` (a prime, > any epoch
# count, so that (seed, epoch) pairs do not collide in practice).
EPOCH_SEED_MULTIPLIER = 100003


def resolve_seed(seed):
  """``seed``, or a fresh random one for None; ValueError unless an int >= 0.

  The drawn seed comes from Python's ``random`` (seeded by
  ``keras.utils.set_random_seed``); the caller stores (and serializes) it so
  that a saved layer or model draws the same random state again.

  Args:
    seed: None or a non-negative int (not a bool).

  Returns:
    A non-negative int.

  Raises:
    ValueError: ``seed`` is neither None nor a non-negative int.
  """
  if seed is None:
    seed = random.randint(0, SEED_MODULUS - 1)
  if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
    raise ValueError(f"seed must be a non-negative int. Received: "
                     f"seed={seed!r}")
  return seed


def mix_seed(seed, purpose):
  """The seed of stream ``purpose`` of a layer seed: ``seed * 16 + purpose``.

  The one mixing rule of tfbio's feedback randomness: the stateless streams
  of ``tfbio.ops.feedback_kernels`` (an int64 tensor ``seed``) and the
  Keras-initializer seeds of :func:`derived_seed` (a Python int) both use it,
  so different purposes of one layer never share a stream.

  Args:
    seed: the layer seed, a Python int or an integer tensor (the arithmetic
      stays in its type; int64 tensors do not overflow for seeds below
      ``2**59``).
    purpose: an int in ``[0, 16)`` (``tfbio.feedback.PURPOSE_*``).

  Returns:
    ``seed * 16 + purpose``, of the type of ``seed``.
  """
  return seed * PURPOSES_PER_SEED + purpose


def derived_seed(seed, purpose):
  """A Keras-initializer seed for ``purpose``, derived from a layer seed.

  ``mix_seed(seed, purpose) % (2**31 - 1)``, so that it fits the seed range of
  ``keras.initializers``.

  Args:
    seed: the layer seed (int-convertible).
    purpose: an int in ``[0, 16)``.

  Returns:
    A Python int in ``[0, 2**31 - 2]``.
  """
  return mix_seed(int(seed), purpose) % SEED_MODULUS


def epoch_seed(seed, epoch):
  """The data-order (shuffle) seed of ``epoch`` of a run seeded ``seed``.

  Args:
    seed: the run seed (an int).
    epoch: the 0-based epoch index.

  Returns:
    ``seed * 100003 + epoch``.
  """
  return seed * EPOCH_SEED_MULTIPLIER + epoch
