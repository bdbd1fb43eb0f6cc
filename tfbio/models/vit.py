"""A tiny Vision Transformer (Dosovitskiy et al. 2021) with feedback layers.

Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image
Recognition at Scale", ICLR 2021, §3.1 (Eq. 1-4): patch embedding, a learned
class token, learned 1-D position embeddings, ``L`` pre-LayerNorm blocks of
multi-head self-attention and a 2-layer GELU MLP, each with a residual
connection, a final LayerNorm and a linear classifier on the class token.
The sizes here are a CPU-scale configuration for 28x28 (MNIST,
Fashion-MNIST) and 32x32 (CIFAR) images, not one of the paper's models.

Every weight layer is a tfbio feedback layer taking its algorithm from the
registry's feedback plan: the patch embedding (``tfbio.layers.Conv2D``), the
query/key/value/output projections of each attention layer
(``tfbio.layers.MultiHeadAttention``, whose four projections are
``tfbio.layers.EinsumDense`` with the attention layer's algorithm), the MLP
layers and the classifier (``tfbio.layers.Dense``). The attention product
``softmax(QK^T/sqrt(d)) V``, the LayerNorms, the residual additions, the
class token and the position embeddings have no ``W`` to replace and are
differentiated exactly (BP through them).

:class:`AddPositionEmbedding` (``"tfbio>AddPositionEmbedding"``) is
registered when ``tfbio.models`` is imported; import it before
``keras.models.load_model``.
"""

import keras
from keras import ops

from tfbio import layers
from tfbio.models.registry import FeedbackPlan
from tfbio.models.registry import register_model
from tfbio.utils import checks

__all__ = ["AddPositionEmbedding", "vit_tiny"]

POOLS = ("token", "avg")


@keras.saving.register_keras_serializable(package="tfbio")
class AddPositionEmbedding(keras.layers.Layer):
  """Prepends a learned class token (optional) and adds position embeddings.

  Input ``(batch, n, d)`` patch embeddings; output ``(batch, n + 1, d)``
  with ``class_token=True`` (token 0 is the class token, ViT's
  ``x_class``), else ``(batch, n, d)``; a learned embedding per position
  (ViT's ``E_pos``) is added to every token. Both start from ``initializer``
  (truncated normal, std 0.02, as timm's ViT position embeddings).

  Args:
    class_token: prepend the class token.
    initializer: initializer of the class token and position embeddings.
    **kwargs: ``keras.layers.Layer`` arguments.
  """

  def __init__(self, class_token=True, initializer=None, **kwargs):
    super().__init__(**kwargs)
    self.class_token = checks.boolean("class_token", class_token)
    self.initializer = keras.initializers.get(
        initializer or keras.initializers.TruncatedNormal(stddev=0.02))
    self.cls = None

  def build(self, input_shape):
    tokens, dim = input_shape[1], input_shape[2]
    if self.class_token:
      self.cls = self.add_weight(name="cls", shape=(1, 1, dim),
                                 initializer=self.initializer)
      tokens += 1
    self.pos = self.add_weight(name="pos", shape=(1, tokens, dim),
                               initializer=self.initializer)

  def call(self, inputs):
    x = inputs
    if self.cls is not None:
      cls = ops.broadcast_to(ops.cast(self.cls, x.dtype),
                             (ops.shape(x)[0], 1, x.shape[-1]))
      x = ops.concatenate([cls, x], axis=1)
    return x + ops.cast(self.pos, x.dtype)

  def compute_output_shape(self, input_shape):
    tokens = input_shape[1]
    if self.class_token and tokens is not None:
      tokens += 1
    return (input_shape[0], tokens, input_shape[2])

  def get_config(self):
    return {**super().get_config(), "class_token": self.class_token,
            "initializer": keras.initializers.serialize(self.initializer)}


def _layer_norm(name):
  # ViT's LayerNorm (timm: eps 1e-6), learnable scale and offset.
  return keras.layers.LayerNormalization(epsilon=1e-6, name=name)


def _block(x, heads, mlp_dim, plan, name):
  """Pre-LN block: ``x + MSA(LN(x))``, then ``x + MLP(LN(x))`` (Eq. 2-3)."""
  dim = x.shape[-1]
  y = _layer_norm(f"{name}_norm1")(x)
  y = layers.MultiHeadAttention(heads, dim // heads,
                                feedback=plan(f"{name}_attn"),
                                name=f"{name}_attn")(y, y)
  x = keras.layers.Add(name=f"{name}_add1")([x, y])
  y = _layer_norm(f"{name}_norm2")(x)
  y = layers.Dense(mlp_dim, activation="gelu",
                   feedback=plan(f"{name}_mlp_fc1"), name=f"{name}_mlp_fc1")(y)
  y = layers.Dense(dim, feedback=plan(f"{name}_mlp_fc2"),
                   name=f"{name}_mlp_fc2")(y)
  return keras.layers.Add(name=f"{name}_add2")([x, y])


@register_model(source=("Dosovitskiy et al. 2021 §3.1 (ViT), tiny CPU "
                        "configuration"),
                input_shape=(28, 28, 1), num_classes=10,
                small_input_shape=(8, 8, 1))
def vit_tiny(num_classes=10, input_shape=(28, 28, 1), *, feedback="bp",
             last_layer=None, overrides=None, patch_size=4, dim=64, depth=4,
             num_heads=4, mlp_dim=128, pool="token"):
  """A small ViT: 4x4 patches, dim 64, 4 blocks of 4 heads, MLP 128.

  ::

      patch_embed   Conv 4x4/4, dim filters     28x28x1 -> 7x7x64
      patch_tokens  reshape                             -> 49x64
      pos_embed     class token + learned position      -> 50x64
                    embeddings (pool="token")
      block{i}      i = 1..depth:
                    x + MHA(LN(x)) (num_heads heads of dim/num_heads;
                    q/k/v/o projections with bias), then
                    x + fc2(GELU(fc1(LN(x)))) (fc1 mlp_dim, fc2 dim)
      norm          LayerNorm                           -> 50x64
      cls_token     token 0 (pool="token"; Cropping1D + Flatten)
                    or mean over tokens (pool="avg")    -> 64
      head          Dense num_classes (the classifier, logits)

  With the defaults (28x28x1, 10 classes): 139,018 trainable parameters
  (patch 1,088; tokens 64 + 50*64; per block 33,472 = LNs 256, attention
  4 * (64*64 + 64), MLP 8,320 + 8,256; final LN 128; head 650). For 32x32x3
  CIFAR images the same defaults give 8x8 = 64 patches (142,026
  parameters). One epoch of Fashion-MNIST (60k images) is a few CPU minutes.

  Interpretations: pre-LayerNorm (ViT Eq. 2-3), LayerNorm epsilon 1e-6;
  GELU exact (erf), as ``torch.nn.GELU``; no dropout. Initialisation: Xavier
  (Glorot) uniform kernels (patch conv, projections, MLP, head; vit_jax's
  MLP-block kernel init, used everywhere here; the head is *not*
  zero-initialised as in vit_jax, since ``fa`` draws ``B`` from the kernel
  initializer), zero biases; class token and position embeddings truncated
  normal std 0.02 (timm's position-embedding init); LayerNorm scale 1,
  offset 0.

  Layer names: ``patch_embed``, ``patch_tokens``, ``pos_embed``,
  ``block{i}_norm1``, ``block{i}_attn`` (its projections ``query``, ``key``,
  ``value``, ``attention_output`` take ``block{i}_attn``'s algorithm: an
  override names the attention layer), ``block{i}_add1``,
  ``block{i}_norm2``, ``block{i}_mlp_fc1``, ``block{i}_mlp_fc2``,
  ``block{i}_add2`` for i in 1..depth, ``norm``, ``cls_token`` and
  ``cls_flatten`` (or ``avgpool``), ``head`` (the classifier).

  Args:
    num_classes: units of the classifier ``head``.
    input_shape: ``(height, width, channels)``; height and width multiples
      of ``patch_size``.
    feedback, last_layer, overrides: the per-layer feedback spec
      (``tfbio.models.create_model``); ``last_layer`` is ``head``'s.
    patch_size: patch side (kernel = stride of ``patch_embed``); 4 gives
      7x7 patches of a 28x28 image (7 would give 4x4).
    dim: token width (``dim`` divisible by ``num_heads``).
    depth: transformer blocks.
    num_heads: attention heads (key dim ``dim // num_heads``).
    mlp_dim: hidden units of each block's MLP.
    pool: ``"token"`` (classify the class token, as ViT) or ``"avg"``
      (global average of the tokens, no class token).

  Returns:
    A ``keras.Model`` named ``"vit_tiny"`` that outputs logits.
  """
  checks.positive_int("num_classes", num_classes)
  input_shape = checks.shape("input_shape", input_shape, rank=3)
  for name, value in (("patch_size", patch_size), ("dim", dim),
                      ("depth", depth), ("num_heads", num_heads),
                      ("mlp_dim", mlp_dim)):
    checks.positive_int(name, value)
  checks.one_of("pool", pool, POOLS)
  if dim % num_heads:
    raise ValueError(f"dim must be divisible by num_heads. Received: "
                     f"dim={dim!r}, num_heads={num_heads!r}")
  if input_shape[0] % patch_size or input_shape[1] % patch_size:
    raise ValueError(f"input_shape height and width must be multiples of "
                     f"patch_size={patch_size}. Received: "
                     f"input_shape={input_shape}")
  plan = FeedbackPlan(feedback, last_layer, overrides)
  inputs = keras.Input(shape=input_shape, name="image")
  x = layers.Conv2D(dim, patch_size, strides=patch_size,
                    feedback=plan("patch_embed"), name="patch_embed")(inputs)
  tokens = x.shape[1] * x.shape[2]
  x = keras.layers.Reshape((tokens, dim), name="patch_tokens")(x)
  x = AddPositionEmbedding(class_token=pool == "token", name="pos_embed")(x)
  for i in range(1, depth + 1):
    x = _block(x, num_heads, mlp_dim, plan, f"block{i}")
  x = _layer_norm("norm")(x)
  if pool == "token":
    x = keras.layers.Cropping1D((0, tokens), name="cls_token")(x)
    x = keras.layers.Flatten(name="cls_flatten")(x)
  else:
    x = keras.layers.GlobalAveragePooling1D(name="avgpool")(x)
  outputs = layers.Dense(num_classes, feedback=plan("head", classifier=True),
                         name="head")(x)
  return plan.finish(keras.Model(inputs, outputs, name="vit_tiny"))
