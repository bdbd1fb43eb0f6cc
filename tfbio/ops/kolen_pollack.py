"""The weight-decay term of Kolen–Pollack feedback (akrout2019 §3).

Kolen–Pollack learning (Kolen & Pollack 1994; Akrout et al. 2019, "Deep
learning without weight transport", NeurIPS) moves ``W`` and its feedback
kernel ``B`` by the same gradient increment and decays both by the same
``λ``::

    ΔW = -η (∇W + λ W)        ΔB = -η (∇W + λ B)

so that ``W - B`` shrinks as ``(1 - ηλ)^t`` under plain SGD. tfbio gives
``B`` the increment through ``tfbio.ops.feedback_linear``
(``feedback_receives_kernel_grad=True``); the decay is the loss term below,
whose gradients are exactly ``λW`` and ``λB``.
"""

from keras import ops


def kolen_pollack_decay(kernel, feedback_kernel, weight_decay):
  """``λ/2 (‖W‖² + ‖B‖²)``, whose gradients are ``λW`` and ``λB``.

  Args:
    kernel: ``W`` (a tensor or variable).
    feedback_kernel: ``B``, same shape.
    weight_decay: ``λ >= 0`` (a Python float).

  Returns:
    A scalar tensor (in ``B``'s dtype).
  """
  b = ops.convert_to_tensor(feedback_kernel)
  w = ops.cast(ops.convert_to_tensor(kernel), b.dtype)
  return (0.5 * weight_decay) * (ops.sum(ops.square(w)) +
                                 ops.sum(ops.square(b)))
