"""The actor-critic learner family: IMPALA, MGRL, STAC, STACX and DrMG.

They share one network shape (a torso and policy/value heads, several heads
for STACX, a quantile value head when distributional) and one loss
(`losses.actor_critic_loss`, STAC Algorithm 1); they differ in which
hyperparameters are metaparameters and how those are transformed:

- IMPALA: none; the loss uses the fixed config values.
- MGRL (Xu et al. 2018): gamma and lambda are sigmoid(logits); the outer loss
  uses the fixed reference gamma', lambda' (no KL term, g_kl = 0 by default).
- STAC (Zahavy et al. 2020): gamma, lambda, alpha, g_v, g_p, g_e (Algorithm 2
  line 10: sigmoid, loss weights scaled by their outer value); the outer
  loss adds g_kl KL(pi_theta' || pi_theta).
- STACX: STAC with n heads, each with its own eta_i; head 1 acts and alone
  enters the outer loss; the inner loss averages the heads' losses (Algorithm
  2 line 11).
- DrMG (Yin et al. (2023)): per-quantile gamma, lambda, g_v (w_Z) vectors and scalar
  alpha, g_p (w_pi), g_e (w_H).

The subclasses in the agent folders only choose `MetaSpec`s and defaults.
"""

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import tensorflow as tf

from tf_metagrad import types
from tf_metagrad.agents import base
from tf_metagrad.agents import config as config_lib
from tf_metagrad.agents import losses
from tf_metagrad.agents import networks as networks_lib
from tf_metagrad.distribute import xla
from tf_metagrad.networks import params as params_lib
from tf_metagrad.ops import distributional

# The hyperparameters a meta-gradient agent may self-tune (STAC's eta), with
# the outer-value field of the config each one is tied to.
ETA_NAMES = ("gamma", "lambda_", "alpha", "alpha_rho", "alpha_c", "g_v",
             "g_p", "g_e")
_LOSS_WEIGHTS = ("g_v", "g_p", "g_e")


class MetaSpec(NamedTuple):
  """One metaparameter: its name in eta, its shape, and its owner head."""

  name: str
  shape: Tuple[int, ...] = ()
  head: int = 0


def meta_key(spec: MetaSpec, num_heads: int) -> str:
  return spec.name if num_heads == 1 else f"{spec.name}/head{spec.head}"


class ActorCriticLearner(base.Learner):
  """Learner of the actor-critic family; see the module docstring.

  Args:
    config: an `AgentConfig` subclass with (at least) `meta_learned`,
      `g_kl`, `num_heads`, `separate_alphas`.
    network: an `networks.AgentNetwork`.
    meta_specs: the self-tuned metaparameters (empty for IMPALA).
    strategy: a `tf.distribute.Strategy`.
  """

  def __init__(self, config: config_lib.AgentConfig,
               network: networks_lib.AgentNetwork,
               meta_specs: Sequence[MetaSpec],
               strategy: Optional[tf.distribute.Strategy] = None) -> None:
    self._meta_specs = tuple(meta_specs)
    self._num_heads = getattr(config, "num_heads", 1)
    strategy = strategy or tf.distribute.get_strategy()
    # Before any variable is placed on the TPU: float64 would fail there
    # only when the first step compiles.
    if xla.is_tpu(strategy):
      config_lib.check_tpu_dtype(config.dtype)
    dtype = tf.as_dtype(config.dtype)
    with strategy.scope():
      self._eta = {
          meta_key(s, self._num_heads): tf.Variable(
              tf.fill(s.shape, tf.constant(config.meta_init, dtype)),
              name=meta_key(s, self._num_heads).replace("/", "_"))
          for s in self._meta_specs}
    if config.distributional:
      self._taus = distributional.quantile_midpoints(
          config.num_quantiles, dtype=dtype)
    else:
      self._taus = None
    super().__init__(config, network, strategy)

  # ------------------------------------------------------------------ eta
  def _meta_variables(self):
    return dict(self._eta)

  def _transform(self, meta: Dict[str, tf.Tensor], head: int) -> Dict:
    """eta logits of one head -> inner hyperparameter values (Alg. 2 l. 10).

    Names not self-tuned keep their outer (config) value exactly.
    """
    cfg = self.config
    values = {}
    for spec in self._meta_specs:
      if spec.head != head:
        continue
      value = tf.sigmoid(tf.cast(meta[meta_key(spec, self._num_heads)],
                                 self.dtype))
      if spec.name in _LOSS_WEIGHTS:
        value = value * getattr(cfg, spec.name)
      values[spec.name] = value
    return values

  def _meta_values(self, meta):
    out = {}
    for head in range(self._num_heads):
      for name, value in self._transform(meta, head).items():
        out[name if self._num_heads == 1 else f"{name}/head{head}"] = value
    return out

  def _hparams(self, inner_values: Dict) -> losses.LossHyperparams:
    cfg = self.config
    alpha = inner_values.get("alpha", cfg.alpha)
    return losses.LossHyperparams(
        gamma=inner_values.get("gamma", cfg.gamma),
        lambda_=inner_values.get("lambda_", cfg.lambda_),
        alpha_rho=inner_values.get("alpha_rho", alpha),
        alpha_c=inner_values.get("alpha_c", alpha),
        g_v=inner_values.get("g_v", cfg.g_v),
        g_p=inner_values.get("g_p", cfg.g_p),
        g_e=inner_values.get("g_e", cfg.g_e))

  def _outer_hparams(self) -> losses.LossHyperparams:
    cfg = self.config
    return losses.LossHyperparams(
        gamma=cfg.gamma, lambda_=cfg.lambda_, alpha_rho=cfg.alpha,
        alpha_c=cfg.alpha, g_v=cfg.g_v, g_p=cfg.g_p, g_e=cfg.g_e)

  # -------------------------------------------------------------- forward
  def _forward(self, params: Optional[List[tf.Tensor]],
               batch: types.Trajectory,
               reference: Optional[List[tf.Tensor]] = None, gamma=None):
    """(outputs at `params`, stop-gradiented outputs at `reference`).

    With `reference=None` the reference outputs are the outputs themselves
    behind a stop-gradient (one forward pass). `gamma` conditions a
    gamma-embedding network (None: its reference gamma). A recurrent network
    is unrolled over the T+1 observations of `batch` from `batch.core_state`,
    its state zeroed before x_{t+1} wherever `discount[t] == 0` (the actor
    starts the next episode there: after a termination, and after the
    padding step that carries a truncated episode's final observation, see
    `types.Trajectory.mask`).
    """
    kwargs = {} if gamma is None else {"gamma": gamma}
    if self.network.recurrent:
      ended = tf.equal(tf.convert_to_tensor(batch.discount), 0)
      kwargs["core_state"] = batch.core_state
      kwargs["reset"] = tf.concat([tf.zeros_like(ended[:1]), ended], 0)
    outputs = params_lib.call_with_weights(self.network, params,
                                           batch.observation, **kwargs)
    if reference is None:
      ref = outputs
    else:
      if gamma is not None:
        kwargs["gamma"] = self._conditioning_gamma(reference.meta)
      ref = params_lib.call_with_weights(self.network, reference.params,
                                         batch.observation, **kwargs)
    return outputs, tf.nest.map_structure(tf.stop_gradient, ref)

  def _conditioning_gamma(self, meta):
    """The gamma a gamma-embedding network is conditioned on in the inner
    loss (the inner gamma of head 0)."""
    return self._hparams(self._transform(meta, 0) if meta else {}).gamma

  def _rewards(self, batch: types.Trajectory):
    rewards = tf.cast(batch.reward, self.dtype)
    if self.config.reward_clip is not None:
      clip = tf.constant(self.config.reward_clip, self.dtype)
      rewards = tf.clip_by_value(rewards, -clip, clip)
    return rewards

  def _head_loss(self, outputs, ref_outputs, head: int,
                 batch: types.Trajectory, hparams: losses.LossHyperparams,
                 inner: bool):
    net = self.network
    return losses.actor_critic_loss(
        policy=net.policy(outputs, head, time_slice=slice(0, -1)),
        values=net.values(outputs, head),
        reference_policy=net.policy(ref_outputs, head,
                                    time_slice=slice(0, -1)),
        reference_values=net.values(ref_outputs, head),
        actions=batch.action,
        rewards=self._rewards(batch),
        discounts=batch.discount,
        behaviour_log_prob=batch.behaviour_log_prob,
        hparams=hparams,
        inner=inner,
        clip_rho_threshold=self.config.clip_rho_threshold,
        clip_pg_rho_threshold=self.config.clip_pg_rho_threshold,
        quantile_taus=self._taus,
        kappa=self.config.kappa,
        distributional_advantage=getattr(
            self.config, "distributional_advantage", "vtrace"),
        n_step=self.config.n_step,
        masks=types.step_mask(batch))

  def _split(self, batch):
    # Without metaparameters there is no outer loss, and the inner update
    # gets the whole batch.
    if self.config.outer_batch == "same" or not self._meta_specs:
      return batch, batch
    # "split": inner loss on the first half of the batch, outer on the rest.
    # Time-major fields carry the batch on axis 1, the core state on axis 0.
    size = batch.reward.shape[1]
    if size is not None and size < 2:
      raise ValueError(
          f"outer_batch='split' needs a batch of at least 2 trajectories "
          f"(one per half), got batch size {size}.")
    half = size // 2
    mask = types.step_mask(batch)
    batch = batch._replace(mask=() if mask is None else mask)
    halves = []
    for part in (slice(None, half), slice(half, None)):
      sliced = tf.nest.map_structure(lambda x, p=part: x[:, p],
                                     batch._replace(core_state=()))
      halves.append(sliced._replace(core_state=tf.nest.map_structure(
          lambda x, p=part: x[p], batch.core_state)))
    return tuple(halves)

  # ---------------------------------------------------------------- losses
  def _inner_loss(self, params, meta, batch, reference):
    gamma = None
    if self.network.gamma_embedding_size:
      gamma = self._conditioning_gamma(meta)
    outputs, ref_outputs = self._forward(params, batch, reference,
                                         gamma=gamma)
    total = 0.0
    logs = {}
    for head in range(self._num_heads):
      values = self._transform(meta, head) if meta else {}
      out = self._head_loss(outputs, ref_outputs, head, batch,
                            self._hparams(values), inner=True)
      total += out.loss
      if head == 0:
        logs.update(value_loss=out.value_loss, policy_loss=out.policy_loss,
                    entropy_loss=out.entropy_loss,
                    mean_vs=tf.reduce_mean(out.vs))
      if self._num_heads > 1:
        logs[f"head{head}/inner_loss"] = out.loss
    return total / self._num_heads, logs

  def _outer_loss(self, new_params, old_params, batch, inner_batches,
                  reference):
    del inner_batches
    outputs, ref_outputs = self._forward(new_params, batch,
                                         reference)
    out = self._head_loss(outputs, ref_outputs, 0, batch,
                          self._outer_hparams(), inner=False)
    loss = out.loss
    logs = {"value_loss": out.value_loss, "policy_loss": out.policy_loss,
            "entropy_loss": out.entropy_loss}
    g_kl = getattr(self.config, "g_kl", 0.0)
    if g_kl:
      old, _ = self._forward(old_params, batch)
      new_policy = self.network.policy(outputs, 0, time_slice=slice(0, -1))
      old_policy = self.network.policy(old, 0, time_slice=slice(0, -1))
      kl_terms = new_policy.kl(old_policy.stop_gradient())
      masks = types.step_mask(batch)
      kl = losses.masked_sum(kl_terms, None if masks is None
                             else tf.cast(masks, kl_terms.dtype))
      loss += tf.constant(g_kl, self.dtype) * kl
      logs["kl"] = kl
    return loss, logs
