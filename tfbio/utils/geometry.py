"""Convolution geometry shared by the conv and locally-connected layers."""


def conv_output_length(length, kernel, stride, padding, dilation=1):
  """Output length of a convolution along one axis.

  TensorFlow's conventions: ``"same"`` gives ``ceil(length / stride)``
  whatever the kernel; ``"valid"`` gives
  ``floor((length - effective) / stride) + 1`` with the dilated kernel extent
  ``effective = dilation * (kernel - 1) + 1`` (``<= 0`` when the kernel does
  not fit; callers that need a positive length check it).

  Args:
    length: input length, or None (unknown).
    kernel: kernel size.
    stride: stride.
    padding: ``"same"`` or ``"valid"`` (lower case, see
      ``tfbio.utils.checks.padding``).
    dilation: dilation rate.

  Returns:
    The output length (an int), or None when ``length`` is None.
  """
  if length is None:
    return None
  if padding == "same":
    return -(-length // stride)
  effective = dilation * (kernel - 1) + 1
  return (length - effective) // stride + 1
