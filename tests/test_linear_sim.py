"""tfbio.experiments.linear_sim (tools/linear_sim.py): amit2019 §5.1, updated feedback speeds up a linear net.

A short run (300 iterations, step 0.03, 2 seeds) of the 40-100-100-10 linear
network must show amit2019's result: the iterations needed to reach 1 % of
the initial error fall strictly as ε grows (0 < 0.25 < 0.5 < 1), in every
seed, and the correlation of ``W_l`` and ``B_l`` ends higher, and grows more,
for a larger ε. The feedback update must also be exactly the one of
docs/algorithms.md §1, §7 / amit2019: with ``W(0) = 0``,
``B(t) = R(0) + ε W(t)``.
"""

import numpy as np
import pytest

import tfbio
from tfbio.experiments import linear_sim

EPSILONS = (0.0, 0.25, 0.5, 1.0)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def curves():
  return linear_sim.run(EPSILONS, iterations=300, seeds=(0, 1),
                        learning_rate=0.03, bp=True, target_error=0.01)


def _first_defined(corr):
  """Per seed and layer, the first non-NaN correlation (W_l leaves 0)."""
  n_seeds, _, n_layers = corr.shape
  out = np.empty((n_seeds, n_layers))
  for s in range(n_seeds):
    for l in range(n_layers):
      finite = corr[s, np.isfinite(corr[s, :, l]), l]
      out[s, l] = finite[0]
  return out


def test_curves_shapes_and_initial_error(curves):
  names = [linear_sim.setting_name(e) for e in EPSILONS] + ["BP"]
  assert curves.settings == names
  _, y0 = linear_sim.make_data(0)
  _, y1 = linear_sim.make_data(1)
  np.testing.assert_allclose(curves.initial_errors,
                             [np.sum(y0.astype(float)**2),
                              np.sum(y1.astype(float)**2)], rtol=1e-6)
  for name in names:
    assert curves.errors[name].shape == (2, 301)
    assert curves.correlations[name].shape == (2, 301, 3)
  for name in names[:-1]:
    # W(0) = 0: the network outputs 0, so the first error is ||Y||².
    np.testing.assert_allclose(curves.errors[name][:, 0],
                               curves.initial_errors, rtol=1e-5)
    # ... and corr(W, B) is undefined (NaN) until W_l moves.
    assert np.all(np.isnan(curves.correlations[name][:, 0, :]))
  # BP: B = W.
  np.testing.assert_allclose(curves.correlations["BP"][:, 1:], 1.0,
                             atol=1e-5)


def test_iterations_to_target_fall_strictly_with_epsilon(curves):
  per_setting = [linear_sim.iterations_to_target(
      curves, linear_sim.setting_name(e)) for e in EPSILONS]
  for seed_index in range(2):
    its = [p[seed_index] for p in per_setting]
    assert None not in its, its
    assert its[0] > its[1] > its[2] > its[3], its
  # The errors keep falling (gradient descent, not noise).
  for name in curves.settings:
    err = curves.errors[name]
    assert np.all(err[:, -1] < 1e-2 * err[:, 0])


def test_wb_correlation_grows_more_with_epsilon(curves):
  finals, growths = [], []
  for e in EPSILONS:
    corr = curves.correlations[linear_sim.setting_name(e)]
    finals.append(corr[:, -1, :])
    growths.append((corr[:, -1, :] - _first_defined(corr)).mean(axis=0))
  for a, b in zip(finals, finals[1:]):
    assert np.all(b > a), (a, b)  # every seed and layer
  for a, b in zip(growths, growths[1:]):
    assert np.all(b > a), (a, b)  # every layer, mean over seeds
  # amit2019: the top layer of FRFB aligns (corr near 1), the input layer
  # does not; URFB aligns every layer far more.
  assert np.all(finals[0][:, 2] > 0.9)
  assert np.all(np.abs(finals[0][:, 0]) < 0.1)
  assert np.all(finals[-1] > 0.6)


@pytest.mark.parametrize("epsilon", EPSILONS)
def test_feedback_update_is_epsilon_times_the_weight_update(epsilon):
  # W -= η g and B -= ε η g with the same g (tfbio's urfb gives B the
  # gradient of W), W(0) = 0  =>  B(t) = R(0) + ε W(t) exactly.
  x, y = linear_sim.make_data(3)
  layers = linear_sim.build_network("urfb", 3, feedback_std=0.05)
  r0 = [np.array(linear_sim.feedback_variable(l).numpy()) for l in layers]
  for layer in layers:
    np.testing.assert_array_equal(layer.kernel.numpy(), 0.0)
    assert not np.allclose(layer.feedback_kernel(), 0.0)
  errors, corrs = linear_sim.train(layers, x, y, epsilon, 40, 0.03)
  for layer, r in zip(layers, r0):
    w = layer.kernel.numpy()
    b = np.array(layer.feedback_kernel())
    assert np.abs(w).max() > 1e-3, layer.name
    np.testing.assert_allclose(b, r + epsilon * w, rtol=0, atol=1e-6,
                               err_msg=layer.name)
  # The in-graph metrics agree with the network after the last update.
  out = x
  for layer in layers:
    out = np.array(layer(out))
  np.testing.assert_allclose(errors[-1], np.sum((y - out)**2), rtol=1e-4)
  expected = [tfbio.analysis.pearson_correlation(
      layer.kernel.numpy(), layer.feedback_kernel()) for layer in layers]
  np.testing.assert_allclose(corrs[-1], expected, atol=1e-5)
  assert errors[-1] < errors[0]


def test_bp_network_and_bad_arguments():
  layers = linear_sim.build_network("bp", 0, kernel_std=0.05)
  assert [l.kernel.shape for l in layers] == [(40, 100), (100, 100),
                                              (100, 10)]
  assert all(l.bias is None for l in layers)
  assert all(linear_sim.feedback_variable(l) is None for l in layers)
  assert 0.03 < np.std(layers[1].kernel.numpy()) < 0.07
  with pytest.raises(ValueError, match="epsilon=0.5"):
    linear_sim.train(layers, *linear_sim.make_data(0), 0.5, 5, 0.01)
  with pytest.raises(ValueError, match="epsilon=1.5"):
    linear_sim.run((1.5,), iterations=5, seeds=(0,))
  with pytest.raises(ValueError, match="feedback='fa'"):
    linear_sim.build_network("fa", 0)


def test_table_and_plot(curves, tmp_path):
  text = linear_sim.table(curves)
  lines = text.splitlines()
  assert len(lines) == 2 + len(curves.settings)
  its = linear_sim.iterations_to_target(curves, "eps=1")
  assert lines[2 + 3].startswith(
      f"| eps=1 | {np.mean(its):.1f} ± {np.std(its):.1f} |")
  short = linear_sim.run((0.0,), iterations=20, seeds=(0,),
                         learning_rate=0.01, bp=False)
  assert "not reached" in linear_sim.table(short)
  path = linear_sim.plot(curves, str(tmp_path / "fig12.png"))
  with open(path, "rb") as f:
    data = f.read()
  assert data.startswith(PNG_MAGIC) and len(data) > 10_000
