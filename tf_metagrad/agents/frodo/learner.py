"""FRODO learner: the meta-network's target G_eta(tau) drives M inner steps.

Inner loss (Qiu (2021) section 3.3, an A2C/V-trace-style update with G_eta in
place of the bootstrapped return):

  L_in = sum_t g_v (G_t - V(x_t))^2
         - g_p sum_t min(1, IS_t) log pi(a_t|x_t) (G_t - sg V(x_t))
         - g_e sum_t H_t,

with G = G_eta(x_t, r, discount, sg V(x_{t+1})) from the meta-network's LSTM
run forward over the trajectory by default (Qiu (2021) sections 4.1 and 5.2;
`use_observation` and `meta_direction` select the inputs and direction).
The truncated importance weight min(1, IS) corrects the small policy lag of
the actors (Qiu (2021) is on-policy, where it is 1). After M
such updates on M trajectories, the outer loss is the canonical V-trace
actor-critic loss at theta' on a held-out trajectory (plus, with the
extension, b1 times the fixed-target loss on the inner trajectories), and
its meta-gradient flows through all M updates into the meta-network weights.

With `distributional=True` the meta-network outputs N quantile targets, the
value loss is the quantile Huber loss and the advantage averages the
quantiles (Yin et al.'s (2023) composition, applied to FRODO).

Time limits (Pardo et al. 2018): at a padding step (`Trajectory.mask` 0, the
final observation x_final of a truncated episode, discount 0) the
meta-network sees reward 0 and discount 0 like a termination, and its target
there is left out of every inner loss term; the step before it (discount 1)
gets sg V(x_final) as its next value, so G_eta can bootstrap from it. The
outer and pseudo-label losses mask padding steps as `losses` does.

The pseudo-label weight b1 is optionally normalised (Qiu (2021) section 5):
"outer" divides it by |L_outer|, the paper's b1 / L_outer; "value" by the
outer value loss only. Either normaliser is a stop-gradiented quantity.
"""

from typing import Dict, Optional

import tensorflow as tf

from tf_metagrad import types
from tf_metagrad.agents import actor_critic
from tf_metagrad.agents import losses
from tf_metagrad.agents import networks as networks_lib
from tf_metagrad.agents.frodo import config as frodo_config
from tf_metagrad.agents.frodo import networks as frodo_networks
from tf_metagrad.networks import params as params_lib
from tf_metagrad.ops import distributional


class FrodoLearner(actor_critic.ActorCriticLearner):
  """FRODO; `meta_params()` are the meta-network's weights by name."""

  def __init__(self, config: frodo_config.FrodoConfig,
               network: networks_lib.AgentNetwork,
               strategy: Optional[tf.distribute.Strategy] = None) -> None:
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
      self.meta_network = frodo_networks.make_meta_network(config, network)
    self._meta_names = frodo_networks.weight_names(self.meta_network)
    super().__init__(config, network, meta_specs=(), strategy=strategy)

  def _num_inner_steps(self) -> int:
    return self.config.num_inner_steps

  def _meta_variables(self) -> Dict[str, tf.Variable]:
    return {self._meta_names[v.ref()]: v
            for v in self.meta_network.trainable_variables}

  def _meta_values(self, meta):
    return {}

  def _meta_metrics(self, meta):
    """The global norm of the meta-network's weights (FRODO's eta has no
    hyperparameter values to report)."""
    return {"weight_norm": tf.linalg.global_norm(tf.nest.flatten(meta))}

  def _split(self, batch):
    """Cuts a [(M+1) L] unroll into M+1 consecutive L-step trajectories."""
    pieces = self.config.num_inner_steps + 1
    unroll = batch.reward.shape[0]
    if unroll is None or unroll % pieces:
      raise ValueError(
          f"FRODO with num_inner_steps={pieces - 1} needs an unroll length "
          f"divisible by {pieces}, got {unroll}.")
    length = unroll // pieces
    states = (self._segment_states(batch, length, pieces)
              if self.network.recurrent else [batch.core_state] * pieces)
    mask = types.step_mask(batch)
    segments = []
    for k in range(pieces):
      start = k * length
      segments.append(batch._replace(
          observation=tf.nest.map_structure(
              lambda x, s=start: x[s:s + length + 1], batch.observation),
          action=batch.action[start:start + length],
          reward=batch.reward[start:start + length],
          discount=batch.discount[start:start + length],
          behaviour_log_prob=batch.behaviour_log_prob[start:start + length],
          core_state=states[k],
          mask=() if mask is None else mask[start:start + length]))
    inner = segments[:-1] if pieces > 2 else segments[0]
    return inner, segments[-1]

  def _segment_states(self, batch, length, pieces):
    """The LSTM core's state before each segment's first observation.

    The actor stores only the state before x_0. The state before x_{kL} is
    the one the core reaches over x_0 .. x_{kL-1} at the current parameters
    theta_0, zeroed where an episode ended at step kL - 1, and held fixed
    (stop-gradient) through the M inner steps. Qiu's (2021) agents are
    feed-forward, so this is our choice; it is what acting with theta_0
    would have produced.
    """
    ended = tf.equal(tf.convert_to_tensor(batch.discount), 0)
    reset = tf.concat([tf.zeros_like(ended[:1]), ended], 0)
    states = [tuple(batch.core_state)]
    for k in range(1, pieces):
      begin, end = (k - 1) * length, k * length
      state = self.network.state_after(
          tf.nest.map_structure(lambda x, b=begin, e=end: x[b:e],
                                batch.observation),
          states[-1], reset[begin:end])
      keep = tf.logical_not(ended[end - 1])[:, None]
      states.append(tuple(
          tf.stop_gradient(tf.where(keep, s, tf.zeros_like(s)))
          for s in state))
    return states

  def targets(self, meta: Dict[str, tf.Tensor], batch: types.Trajectory,
              next_values: tf.Tensor) -> tf.Tensor:
    """G_eta(tau) `[T, B]`, or `[T, B, N]` with a quantile value head."""
    weights = [meta[self._meta_names[v.ref()]]
               for v in self.meta_network.trainable_variables]
    kwargs = {}
    if self.config.use_observation:
      obs = batch.observation
      if self.network.observation_leaves is not None:
        obs = self.network.flatten_observation(obs)
      obs = tf.cast(obs[:-1], self.dtype)
      kwargs["observation_embedding"] = tf.reshape(
          obs, tf.concat([tf.shape(obs)[:2], [-1]], 0))
    target = params_lib.call_with_weights(
        self.meta_network, weights, self._rewards(batch),
        tf.cast(batch.discount, self.dtype), next_values, **kwargs)
    if self.config.distributional and target.shape.rank == 2:
      # The meta-network drops a size-1 output axis; a quantile head with
      # N = 1 still needs it to line up with the values [T, B, 1].
      target = target[..., None]
    return target

  def _inner_loss(self, params, meta, batch, reference):
    cfg = self.config
    outputs, ref_outputs = self._forward(params, batch, reference)
    net = self.network
    values = net.values(outputs)
    ref_values = net.values(ref_outputs)
    policy = net.policy(outputs, time_slice=slice(0, -1))
    ref_policy = net.policy(ref_outputs, time_slice=slice(0, -1))
    next_values = ref_values[1:]
    if cfg.distributional:
      next_values = tf.reduce_mean(next_values, axis=-1)
    target = self.targets(meta, batch, next_values)
    log_pi = tf.cast(policy.log_prob(batch.action), self.dtype)
    weights = tf.stop_gradient(tf.minimum(
        tf.constant(1.0, self.dtype),
        tf.exp(tf.cast(ref_policy.log_prob(batch.action), self.dtype)
               - tf.cast(batch.behaviour_log_prob, self.dtype))))
    masks = types.step_mask(batch)
    if masks is not None:
      masks = tf.cast(masks, self.dtype)
    if cfg.distributional:
      n = values.shape[-1]
      per_step = distributional.quantile_huber_loss(
          tf.reshape(values[:-1], [-1, n]), tf.reshape(target, [-1, n]),
          self._taus, kappa=cfg.kappa)
      if masks is not None:
        per_step *= tf.reshape(masks, [-1])
      value_loss = cfg.g_v * tf.reduce_sum(per_step)
      advantage = tf.reduce_mean(target - ref_values[:-1], axis=-1)
    else:
      value_loss = cfg.g_v * losses.masked_sum(
          tf.square(target - values[:-1]), masks)
      advantage = target - ref_values[:-1]
    policy_loss = -cfg.g_p * losses.masked_sum(weights * log_pi * advantage,
                                               masks)
    entropy_loss = -cfg.g_e * losses.masked_sum(
        tf.cast(policy.regularizer(), self.dtype), masks)
    loss = value_loss + policy_loss + entropy_loss
    return loss, {"value_loss": value_loss, "policy_loss": policy_loss,
                  "entropy_loss": entropy_loss,
                  "mean_target": tf.reduce_mean(target)}

  def _outer_loss(self, new_params, old_params, batch, inner_batches,
                  reference):
    loss, logs = super()._outer_loss(new_params, old_params, batch, None,
                                     reference)
    cfg = self.config
    if not cfg.pseudo_label_weight:
      return loss, logs
    inner = inner_batches if isinstance(inner_batches, list) else [
        inner_batches]
    revise = 0.0
    for trajectory in inner:
      outputs, ref_outputs = self._forward(new_params, trajectory,
                                           reference)
      revise += self._head_loss(outputs, ref_outputs, 0, trajectory,
                                self._outer_hparams(), inner=False).loss
    revise /= len(inner)
    weight = tf.constant(cfg.pseudo_label_weight, self.dtype)
    if cfg.pseudo_label_normalize != "none":
      weight = weight / tf.maximum(
          tf.stop_gradient(self._pseudo_label_scale(
              loss, logs, old_params, batch, reference)),
          tf.constant(1e-6, self.dtype))
    logs["pseudo_label_loss"] = revise
    logs["pseudo_label_weight"] = weight
    return loss + weight * revise, logs

  def _pseudo_label_scale(self, outer_loss, outer_logs, old_params, batch,
                          reference) -> tf.Tensor:
    """The normaliser of b1 (Qiu (2021) section 5): |L_outer| ("outer") or
    the outer value loss ("value").

    It is a stop-gradiented quantity, so it is anchored at the reference
    parameters like every other one (see `meta.engine`): with a reference it
    is recomputed at `reference.params`, otherwise it is the outer loss just
    computed.
    """
    if self.config.pseudo_label_normalize == "outer":
      if reference is not None:
        outer_loss, _ = super()._outer_loss(reference.params, old_params,
                                            batch, None, None)
      return tf.abs(outer_loss)
    if reference is None:
      return outer_logs["value_loss"]
    _, at_reference = self._forward(reference.params, batch)
    return self._head_loss(at_reference, at_reference, 0, batch,
                           self._outer_hparams(), inner=False).value_loss
