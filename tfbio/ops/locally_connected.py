"""Locally-connected (untied) 2-D maps whose input gradient uses ``B``.

A locally-connected layer has the connectivity of a convolution (kernel size,
stride, SAME/VALID padding) but a separate filter at every output position
(amit2019 §4.1, bartunov2018 §2.2; docs/algorithms.md §2). Its kernel has
shape ``(P, K, c_out)`` with ``P = out_h*out_w`` positions (row-major) and
``K = kh*kw*c_in`` taps in ``(kh, kw, c_in)`` order, so that
``kernel[p] == conv_kernel.reshape(K, c_out)`` reproduces a convolution.

Three forms compute the same map:

* dense: extract the ``(P, K, batch)`` patches and contract them with the
  kernel position by position (batched matmul); fast, memory ``batch*P*K``;
* sparse: the ``(P*c_out, H*W*c_in)`` connectivity matrix as a
  ``tf.SparseTensor`` whose values are gathered from the kernel (amit2019's
  implementation); slow, memory independent of the batch except for the
  weight gradient, computed in chunks;
* offsets: a sum over the ``kh*kw`` kernel offsets of the pixels each reads
  times that offset's weights, backward recomputed offset by offset with
  in-place accumulation; never forms the patches.

Both take the feedback kernel ``B`` (same shape as ``W``) explicitly: the
weight gradient is the true one, the input gradient uses ``B``, and
``feedback_receives_kernel_grad`` makes ``dE/dB := dE/dW``
(docs/algorithms.md §0).
"""

import math

import numpy as np
import tensorflow as tf
# XLA has no in-place row ops: the offsets form asks whether it is compiled.
from tensorflow.python.ops import control_flow_util  # pylint: disable=g-direct-tensorflow-import

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


def _offset_rows(in_h, in_w, kernel_size, strides, padding):
  """Padding and per-offset pixel rows of the offsets form (NumPy).

  The input is laid out pixel-major, ``(rows*cols, batch, c_in)`` after zero
  padding, so that the window of every kernel offset is a set of whole rows
  (one per output position), for any strides.

  Returns:
    ``(pads, rows, (out_h, out_w))``: ``pads`` the ``[[top, bottom], [left,
    right]]`` zero padding, and ``rows`` a ``(kh*kw, P)`` int32 array:
    ``rows[t, p]`` is the padded pixel that tap ``t = dy*kw + dx`` of output
    position ``p = i*out_w + j`` reads, ``(i*sh + dy)*cols + j*sw + dx``.
  """
  (kh, kw), (sh, sw) = kernel_size, strides
  out_h, out_w, top, left = lc_geometry(in_h, in_w, kernel_size, strides,
                                        padding)
  bottom = max((out_h - 1) * sh + kh - top - in_h, 0)
  right = max((out_w - 1) * sw + kw - left - in_w, 0)
  cols = left + in_w + right
  i, j, dy, dx = np.meshgrid(np.arange(out_h), np.arange(out_w),
                             np.arange(kh), np.arange(kw), indexing="ij")
  rows = ((i * sh + dy) * cols + j * sw + dx).reshape(out_h * out_w, -1).T
  return ([[top, bottom], [left, right]], rows.astype(np.int32),
          (out_h, out_w))


def _in_xla():
  return control_flow_util.GraphOrParentsInXlaContext(
      tf.compat.v1.get_default_graph())


def _rows_add(x, rows, v):
  """``x[rows] += v`` in place (rows distinct); a scatter under XLA."""
  if _in_xla():
    return tf.tensor_scatter_nd_add(x, rows[:, None], v)
  return tf.raw_ops.InplaceAdd(x=x, i=rows, v=v)


def _rows_set(x, rows, v):
  """``x[rows] = v`` in place; a scatter under XLA."""
  if _in_xla():
    return tf.tensor_scatter_nd_update(x, rows[:, None], v)
  return tf.raw_ops.InplaceUpdate(x=x, i=rows, v=v)


def feedback_lc_offsets(x, kernel, feedback_kernel, kernel_size, strides,
                        padding, feedback_receives_kernel_grad=False):
  """The locally-connected map accumulated over the ``kh*kw`` kernel offsets.

  ``y[b,i,j,o] = Σ_{dy,dx} Σ_c x_pad[b, i*sh+dy, j*sw+dx, c]
  W[(i,j), (dy,dx,c), o]``: for each offset, the input pixels it reads
  (``P*batch*c_in``, gathered) times that offset's per-position weights
  (``P*c_in*c_out``), summed. No ``batch*P*kh*kw*c_in`` patch tensor is
  formed, in either pass: the backward gathers each offset's pixels again,
  adds their input gradient (through that offset's weights of ``B``) into
  the input gradient in place, and writes that offset's block of the weight
  gradient in place. Control dependencies chain the offsets, so that one
  offset's tensors are alive at a time (graph mode; XLA schedules itself).

  Args:
    x: ``(batch, in_h, in_w, c_in)``.
    kernel: ``W``, ``(P, kh*kw*c_in, c_out)``, layout of
      :func:`extract_patches`.
    feedback_kernel: ``B``, same shape; None means ``B = W`` (the backward
      is still the memory-saving one).
    kernel_size, strides: pairs of ints.
    padding: ``"same"`` or ``"valid"``.
    feedback_receives_kernel_grad: if True, ``B``'s gradient is ``W``'s.

  Returns:
    ``(batch, out_h, out_w, c_out)``.
  """
  _, in_h, in_w, c_in = x.shape
  pads, rows, (out_h, out_w) = _offset_rows(in_h, in_w, kernel_size, strides,
                                            padding.lower())
  n_offsets, positions = rows.shape
  c_out = kernel.shape[-1]
  # W's rows p*n_offsets + t hold offset t's (c_in, c_out) block at p.
  block_rows = np.arange(positions, dtype=np.int32)[None] * n_offsets + (
      np.arange(n_offsets, dtype=np.int32)[:, None])
  (top, bottom), (left, right) = pads
  padded_h, padded_w = top + in_h + bottom, left + in_w + right

  def pixels(x):  # (batch, h, w, c) -> (padded pixels, batch, c)
    x = tf.pad(tf.transpose(x, [1, 2, 0, 3]), pads + [[0, 0], [0, 0]])
    return tf.reshape(x, [padded_h * padded_w, -1, c_in])

  def blocks(w):  # (P, K, c_out) -> (P*n_offsets, c_in, c_out)
    return tf.reshape(w, [positions * n_offsets, c_in, c_out])

  def chained(previous, make):
    with tf.control_dependencies(previous):
      return make()

  @tf.custom_gradient
  def _lc(x, w, b):
    x_px, w_blocks = pixels(x), blocks(w)
    y = None
    for t in range(n_offsets):
      term = chained([] if y is None else [y], lambda t=t: tf.matmul(
          tf.gather(x_px, rows[t]), tf.gather(w_blocks, block_rows[t])))
      y = term if y is None else y + term
    y = tf.transpose(tf.reshape(y, [out_h, out_w, -1, c_out]), [2, 0, 1, 3])

    def grad(g):
      x_px, b_blocks = pixels(x), blocks(b)
      g_pos = tf.reshape(tf.transpose(g, [1, 2, 0, 3]),
                         [positions, -1, c_out])  # (P, batch, c_out)
      # Fresh buffers (Empty: Grappler folds zeros into a constant), updated
      # in place; every block of dw is written once.
      dw, dx_px = chained([g_pos], lambda: (
          tf.raw_ops.Empty(shape=[positions * n_offsets, c_in, c_out],
                           dtype=w.dtype, init=False),
          tf.raw_ops.Empty(shape=tf.shape(x_px), dtype=x.dtype, init=True)))
      for t in range(n_offsets):

        def step(t=t):
          dwin = tf.matmul(g_pos, tf.gather(b_blocks, block_rows[t]),
                           transpose_b=True)  # (P, batch, c_in)
          dw_t = tf.matmul(tf.gather(x_px, rows[t]), g_pos, transpose_a=True)
          return (_rows_add(dx_px, rows[t], dwin),
                  _rows_set(dw, block_rows[t], dw_t))

        dx_px, dw = chained([dx_px, dw], step)
      dx = tf.reshape(dx_px, [padded_h, padded_w, -1, c_in])
      dx = tf.transpose(dx[top:top + in_h, left:left + in_w], [2, 0, 1, 3])
      dw = tf.reshape(dw, tf.shape(w))
      return dx, dw, (dw if feedback_receives_kernel_grad else None)

    return y, grad

  return _lc(x, kernel, kernel if feedback_kernel is None
             else feedback_kernel)
