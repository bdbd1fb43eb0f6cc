"""Locally-connected (untied) 2-D maps whose input gradient uses ``B``.

A locally-connected layer has the connectivity of a convolution (kernel size,
stride, SAME/VALID padding) but a separate filter at every output position
(amit2019 §4.1, bartunov2018 §2.2; docs/algorithms.md §2). Its kernel has
shape ``(P, K, c_out)`` with ``P = out_h*out_w`` positions (row-major) and
``K = kh*kw*c_in`` taps in ``(kh, kw, c_in)`` order, so that
``kernel[p] == conv_kernel.reshape(K, c_out)`` reproduces a convolution.

Two forms compute the same map:

* dense: extract the ``(P, K, batch)`` patches and contract them with the
  kernel position by position (batched matmul); fast, memory ``batch*P*K``;
* sparse: the ``(P*c_out, H*W*c_in)`` connectivity matrix as a
  ``tf.SparseTensor`` whose values are gathered from the kernel (amit2019's
  implementation); slow, memory independent of the batch except for the
  weight gradient, computed in chunks.

Both take the feedback kernel ``B`` (same shape as ``W``) explicitly: the
weight gradient is the true one, the input gradient uses ``B``, and
``feedback_receives_kernel_grad`` makes ``dE/dB := dE/dW``
(docs/algorithms.md §0).
"""

import math

import numpy as np
import tensorflow as tf

from tfbio.utils import geometry


def lc_geometry(in_h, in_w, kernel_size, strides, padding):
  """``(out_h, out_w, pad_top, pad_left)`` of a conv-like connectivity.

  Uses TensorFlow's SAME convention (extra padding at the bottom/right).

  Raises:
    ValueError: the kernel is larger than the (padded) input.
  """
  (kh, kw), (sh, sw) = kernel_size, strides
  if padding == "valid" and (kh > in_h or kw > in_w):
    raise ValueError(f"kernel_size={tuple(kernel_size)} is larger than the "
                     f"input ({in_h}, {in_w}) with padding='valid'.")
  out_h = geometry.conv_output_length(in_h, kh, sh, padding)
  out_w = geometry.conv_output_length(in_w, kw, sw, padding)
  if padding == "valid":
    return out_h, out_w, 0, 0
  pad_h = max((out_h - 1) * sh + kh - in_h, 0)
  pad_w = max((out_w - 1) * sw + kw - in_w, 0)
  return out_h, out_w, pad_h // 2, pad_w // 2


def extract_patches(x, kernel_size, strides, padding):
  """``(P, kh*kw*c_in, batch)`` patches of an NHWC tensor, taps ``(kh, kw, c)``.

  Position-major with the batch last, so that the per-position contraction
  is a plain batched matmul and no patch-sized tensor is ever transposed: the
  (small) input is laid out as one image with ``c_in*batch`` channels, whose
  patches come out in ``(kh, kw, c, b)`` order.
  """
  (kh, kw), (sh, sw) = kernel_size, strides
  shape = tf.shape(x)
  batch, height, width = shape[0], shape[1], shape[2]
  c_in = x.shape[-1]
  merged = tf.reshape(tf.transpose(x, [1, 2, 3, 0]),
                      [1, height, width, c_in * batch])
  patches = tf.image.extract_patches(
      merged, sizes=[1, kh, kw, 1], strides=[1, sh, sw, 1],
      rates=[1, 1, 1, 1], padding=padding.upper())
  pshape = tf.shape(patches)
  return tf.reshape(patches,
                    [pshape[1] * pshape[2], kh * kw * c_in, batch])


def feedback_lc_patches(patches, kernel, feedback_kernel,
                        feedback_receives_kernel_grad=False):
  """``y[p,o,b] = Σ_k W[p,k,o] patches[p,k,b]`` with ``B`` in the input gradient.

  Args:
    patches: ``(P, K, batch)`` from :func:`extract_patches`.
    kernel: ``W``, ``(P, K, c_out)``.
    feedback_kernel: ``B``, same shape; None means plain autodiff (``B = W``).
    feedback_receives_kernel_grad: if True, ``B``'s gradient is ``W``'s.

  Returns:
    ``(P, c_out, batch)``.
  """
  if feedback_kernel is None:
    return tf.matmul(kernel, patches, transpose_a=True)

  @tf.custom_gradient
  def _lc(patches, w, b):
    y = tf.matmul(w, patches, transpose_a=True)

    def grad(g):
      dpatches = tf.matmul(b, g)
      dw = tf.matmul(patches, g, transpose_b=True)
      return dpatches, dw, (dw if feedback_receives_kernel_grad else None)

    return y, grad

  return _lc(patches, kernel, feedback_kernel)


def sparse_connectivity(in_h, in_w, c_in, kernel_size, strides, padding,
                        c_out):
  """Index structure of the sparse connectivity matrix (NumPy, at build time).

  Returns:
    ``(indices, value_index, dense_shape)``: ``indices`` ``(nnz, 2)`` int64
    rows (output unit ``p*c_out + o``) and columns (input unit
    ``(y*in_w + x)*c_in + c``), sorted row-major; ``value_index`` ``(nnz,)``
    the flat index of each entry in the ``(P, K, c_out)`` kernel; and
    ``dense_shape = (P*c_out, in_h*in_w*c_in)``. Taps that fall in the padding
    have no entry (they multiply zeros).
  """
  (kh, kw), (sh, sw) = kernel_size, strides
  out_h, out_w, pad_top, pad_left = lc_geometry(in_h, in_w, kernel_size,
                                                strides, padding)
  oy, ox, ky, kx, ci = np.meshgrid(np.arange(out_h), np.arange(out_w),
                                   np.arange(kh), np.arange(kw),
                                   np.arange(c_in), indexing="ij")
  iy = oy * sh - pad_top + ky
  ix = ox * sw - pad_left + kx
  inside = (iy >= 0) & (iy < in_h) & (ix >= 0) & (ix < in_w)
  p = (oy * out_w + ox)[inside]
  k = ((ky * kw + kx) * c_in + ci)[inside]
  col = ((iy * in_w + ix) * c_in + ci)[inside]
  n_taps = kh * kw * c_in
  # Expand over output channels: entry (p, k, o) -> row p*c_out + o.
  o = np.arange(c_out)
  rows = (p[:, None] * c_out + o[None, :]).reshape(-1)
  cols = np.repeat(col, c_out)
  value_index = ((p * n_taps + k)[:, None] * c_out + o[None, :]).reshape(-1)
  order = np.lexsort((cols, rows))
  indices = np.stack([rows[order], cols[order]], axis=1).astype(np.int64)
  return (indices, value_index[order].astype(np.int64),
          (out_h * out_w * c_out, in_h * in_w * c_in))


def feedback_lc_sparse(x_flat, kernel, feedback_kernel, indices, value_index,
                       dense_shape, feedback_receives_kernel_grad=False,
                       chunk_entries=1 << 20):
  """The locally-connected map as a sparse-matrix product (amit2019 §4.1).

  Args:
    x_flat: ``(batch, in_h*in_w*c_in)``.
    kernel: ``W``, ``(P, K, c_out)``.
    feedback_kernel: ``B``, same shape; None means ``B = W``.
    indices, value_index, dense_shape: from :func:`sparse_connectivity`.
    feedback_receives_kernel_grad: if True, ``B``'s gradient is ``W``'s.
    chunk_entries: the weight gradient is a sampled product
      ``Σ_b x[b, col] g[b, row]`` evaluated this many nonzeros at a time, so
      its memory is ``batch * chunk_entries`` floats.

  Returns:
    ``(batch, P*c_out)``.
  """
  indices = tf.constant(indices)
  value_index = tf.constant(value_index)
  rows, cols = indices[:, 0], indices[:, 1]
  nnz = int(value_index.shape[0])

  def matrix(w):
    return tf.SparseTensor(indices, tf.gather(tf.reshape(w, [-1]),
                                              value_index), dense_shape)

  def forward(x, w):
    # y^T = S x^T with S of shape (P*c_out, H*W*c_in).
    return tf.transpose(tf.sparse.sparse_dense_matmul(matrix(w), x,
                                                      adjoint_b=True))

  @tf.custom_gradient
  def _lc(x, w, b):
    y = forward(x, w)

    def grad(g):
      dx = tf.transpose(tf.sparse.sparse_dense_matmul(
          matrix(b), g, adjoint_a=True, adjoint_b=True))
      pieces = []
      for start in range(0, nnz, chunk_entries):
        stop = min(start + chunk_entries, nnz)
        pieces.append(tf.reduce_sum(
            tf.gather(x, cols[start:stop], axis=1)
            * tf.gather(g, rows[start:stop], axis=1), axis=0))
      values = tf.concat(pieces, 0) if len(pieces) > 1 else pieces[0]
      dw = tf.reshape(
          tf.scatter_nd(value_index[:, None], values,
                        [math.prod(w.shape)]), tf.shape(w))
      return dx, dw, (dw if feedback_receives_kernel_grad else None)

    return y, grad

  return _lc(x_flat, kernel, kernel if feedback_kernel is None
             else feedback_kernel)
