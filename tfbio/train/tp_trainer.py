"""Target propagation (DTP / SDTP) behind ``tfbio-train``: ``config.tp``.

bartunov2018 §2.1.1 and Algorithm 1; docs/algorithms.md §6. :class:`TPTrainer`
is :class:`tfbio.train.Trainer`'s counterpart for ``config.tp.enabled``: it
builds the registry model as the trainer does (``feedback`` must be ``"bp"``:
only the forward computation is used), wraps it in ``tfbio.tp.TargetPropModel``
and trains it with Keras ``fit`` on the same ``tfbio.data`` datasets. The
forward optimizer is the config's (with its learning-rate schedule; bartunov2018
uses Adam), the inverse one is Adam with ``tp.inverse_learning_rate``
(constant), β1 0.9, ``tp.inverse_beta_2`` and ``tp.inverse_epsilon``.

Runs, resumes and writes its work directory as every
:class:`tfbio.train.fit_trainer.FitTrainer`; ``history.csv`` and
``metrics.json`` add ``fwd_loss/<layer>``, ``inv_loss/<layer>`` and
``bp_angle/<layer>``, ``metrics.json`` also ``tp_variant`` and
``tp_schedule``.
"""

import keras

from tfbio.train import fit_trainer

STRATEGIES = fit_trainer.STRATEGIES
# Per-layer TP diagnostics copied from the last epoch into metrics.json.
LAYER_PREFIXES = ("fwd_loss/", "inv_loss/", "bp_angle/")


class TPTrainer(fit_trainer.FitTrainer):
  """Trains ``config`` by target propagation; see the module docstring."""

  rule_name = "target propagation"
  layer_prefixes = LAYER_PREFIXES

  def wrap(self, network, optimizer):
    from tfbio.tp import model as tp_model  # pylint: disable=g-import-not-at-top

    tp = self.config.tp
    inverse = keras.optimizers.Adam(
        tp.inverse_learning_rate, beta_1=0.9, beta_2=tp.inverse_beta_2,
        epsilon=tp.inverse_epsilon, name="inverse_adam")
    wrapper = tp_model.TargetPropModel(
        network, variant=tp.variant, schedule=tp.schedule,
        inverse_training=tp.inverse_training, noise_std=tp.noise_std,
        step_size=tp.step_size, forward_optimizer=optimizer,
        inverse_optimizer=inverse, seed=int(self.config.seed))
    wrapper.compile()
    return wrapper

  def _summary_fields(self, seconds):
    fields = super()._summary_fields(seconds)
    fields.update(feedback="tp", tp_variant=self.config.tp.variant,
                  tp_schedule=self.config.tp.schedule, last_layer=None)
    return fields
