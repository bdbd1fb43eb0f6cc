"""CIFAR ResNets (option A), biotorch's LeNets and the tiny ViT: layouts and
exact parameter counts (tests/test_models.py covers build, a training step,
the ``.keras`` round trip and the feedback spec of every registered model).
"""

import keras
import numpy as np
import pytest

import tfbio
from tfbio import models
from tfbio.models.cifar_resnet import ShortcutA


def _n_trainable(model):
  return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def _cifar_resnet_params(n, classes=10):
  # conv1 3*3*3*16 + bn1 2*16; layer1: n blocks of 2 convs 3*3*16*16 and
  # 2 BNs; layer2: block 0 3*3*16*32 + 3*3*32*32, then 2*3*3*32*32; layer3
  # likewise with 32 -> 64; 2 BNs (gamma, beta) per block; fc 64*C + C.
  # Option-A shortcuts have no parameters.
  stem = 3 * 3 * 3 * 16 + 2 * 16
  layer1 = n * (2 * 3 * 3 * 16 * 16 + 2 * 2 * 16)
  layer2 = (3 * 3 * 16 * 32 + 3 * 3 * 32 * 32 + 2 * 2 * 32
            + (n - 1) * (2 * 3 * 3 * 32 * 32 + 2 * 2 * 32))
  layer3 = (3 * 3 * 32 * 64 + 3 * 3 * 64 * 64 + 2 * 2 * 64
            + (n - 1) * (2 * 3 * 3 * 64 * 64 + 2 * 2 * 64))
  return stem + layer1 + layer2 + layer3 + 64 * classes + classes


def test_cifar_resnet_parameter_counts_are_the_published_ones():
  # He et al. 2016 Table 6: 0.27 M, 0.46 M, 0.85 M; exact counts of
  # akamaster's / biotorch's layout at 10 classes.
  assert _cifar_resnet_params(3) == 269_722
  assert _cifar_resnet_params(5) == 464_154
  assert _cifar_resnet_params(9) == 853_018
  for name, n in (("resnet20", 3), ("resnet32", 5), ("resnet56", 9)):
    assert models.model_info(name).reference_params == _cifar_resnet_params(n)
  model = models.create_model("resnet20")
  assert _n_trainable(model) == 269_722
  # 6n + 2 weight layers: 19 convs and the classifier.
  feedback = [l for l in model.layers
              if isinstance(l, tfbio.layers.BaseFeedbackLayer)]
  assert len(feedback) == 20 and feedback[-1].name == "fc"
  shapes = {l.name: tuple(l.output.shape[1:]) for l in model.layers}
  assert shapes["layer1_2_relu2"] == (32, 32, 16)
  assert shapes["layer2_0_shortcut"] == (16, 16, 32)
  assert shapes["layer3_2_relu2"] == (8, 8, 64)
  assert [l.name for l in model.layers if isinstance(l, ShortcutA)] == [
      "layer2_0_shortcut", "layer3_0_shortcut"]
  assert not model.get_layer("layer2_0_conv1").use_bias
  with pytest.raises(ValueError, match="6n \\+ 2"):
    models.cifar_resnet(21)


def test_shortcut_a_is_pytorchs_subsample_and_symmetric_channel_pad():
  x = np.random.default_rng(0).standard_normal((2, 7, 7, 16)).astype(
      "float32")
  layer = ShortcutA(32, 2)
  y = np.asarray(layer(x))
  # F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))
  expected = np.pad(x[:, ::2, ::2, :], [(0, 0), (0, 0), (0, 0), (8, 8)])
  np.testing.assert_array_equal(y, expected)
  assert layer.compute_output_shape((None, 7, 7, 16)) == (None, 4, 4, 32)
  assert not layer.weights
  again = keras.saving.deserialize_keras_object(
      keras.saving.serialize_keras_object(layer))
  assert isinstance(again, ShortcutA) and again.filters == 32


def test_cifar_resnet_initialisations():
  kaiming = models.create_model("resnet20", num_classes=3,
                                input_shape=(8, 8, 3))
  init = kaiming.get_layer("layer1_0_conv1").kernel_initializer
  assert isinstance(init, keras.initializers.VarianceScaling)
  assert (init.scale, init.mode, init.distribution) == (
      2.0, "fan_in", "untruncated_normal")
  bias = kaiming.get_layer("fc").bias.numpy()
  assert np.all(np.abs(bias) <= 1 / 8) and np.any(bias != 0)
  xavier = models.create_model("resnet20", num_classes=3,
                               input_shape=(8, 8, 3), init="xavier")
  assert isinstance(xavier.get_layer("conv1").kernel_initializer,
                    keras.initializers.GlorotUniform)
  assert not np.any(xavier.get_layer("fc").bias.numpy())
  with pytest.raises(ValueError, match="init"):
    models.create_model("resnet20", init="he")


def test_le_net_layouts_and_counts_follow_biotorch():
  mnist = models.create_model("le_net_mnist")
  shapes = {l.name: tuple(l.output.shape[1:]) for l in mnist.layers}
  assert shapes["pool2"] == (5, 5, 16) and shapes["conv3"] == (1, 1, 120)
  assert shapes["fc1"] == (84,) and shapes["fc2"] == (10,)
  # 5*5*1*6+6 + 5*5*6*16+16 + 5*5*16*120+120 + 120*84+84 + 84*10+10
  assert _n_trainable(mnist) == 156 + 2416 + 48120 + 10164 + 850 == 61_706
  assert isinstance(mnist.get_layer("conv1").kernel_initializer,
                    keras.initializers.GlorotUniform)
  assert not np.any(mnist.get_layer("fc1").bias.numpy())
  cifar = models.create_model("le_net_cifar")
  assert cifar.get_layer("pool2").output.shape[1:] == (6, 6, 64)
  assert cifar.get_layer("avgpool").output.shape[1:] == (128,)
  # 3*3*3*32+32 + 3*3*32*64+64 + 3*3*64*128+128 + 128*256+256 + 256*10+10
  assert _n_trainable(cifar) == 896 + 18496 + 73856 + 33024 + 2570 == 128_842
  with pytest.raises(ValueError, match="too small"):
    models.create_model("le_net_mnist", input_shape=(28, 28, 1))


def test_vit_tiny_counts_spec_and_a_feedback_alignment_step():
  # patch 4*4*1*64+64; class token 64 + positions 50*64; per block: 2 LNs
  # 2*2*64, q/k/v/o 4*(64*64+64), MLP 64*128+128 + 128*64+64; final LN 128;
  # head 64*10+10.
  block = 2 * 2 * 64 + 4 * (64 * 64 + 64) + (64 * 128 + 128) + (128 * 64 + 64)
  expected = 1088 + 64 + 50 * 64 + 4 * block + 128 + 650
  assert expected == 139_018
  assert _n_trainable(models.create_model("vit_tiny")) == expected
  # 32x32x3: 8x8 patches of 4*4*3; pool="avg": no class token.
  assert _n_trainable(models.create_model(
      "vit_tiny", input_shape=(32, 32, 3))) == 142_026
  assert _n_trainable(models.create_model(
      "vit_tiny", pool="avg")) == expected - 64 - 64
  model = models.create_model("vit_tiny", num_classes=3,
                              input_shape=(8, 8, 1), feedback="fa",
                              last_layer="bp", depth=1)
  attn = model.get_layer("block1_attn")
  assert attn.feedback.name == "fa"
  assert {l.feedback.name for l in attn.feedback_layers.values()} == {"fa"}
  assert model.get_layer("head").feedback.name == "bp"
  assert model.tfbio_feedback_plan["block1_attn"] == "fa"
  model.compile(optimizer=keras.optimizers.SGD(0.01),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True), jit_compile=False)
  x = np.random.default_rng(0).standard_normal((4, 8, 8, 1)).astype(
      "float32")
  before = model.get_layer("patch_embed").kernel.numpy().copy()
  assert np.isfinite(model.train_on_batch(x, np.arange(4) % 3))
  assert not np.array_equal(before,
                            model.get_layer("patch_embed").kernel.numpy())
  with pytest.raises(ValueError, match="patch_size"):
    models.create_model("vit_tiny", input_shape=(30, 30, 1))
  with pytest.raises(ValueError, match="num_heads"):
    models.create_model("vit_tiny", dim=30)
