"""bfloat16 compute (issue 14, item 3): `compute_dtype="bfloat16"`.

The network computes in bfloat16 from float32 weights (Keras'
"mixed_bfloat16" policy); weights, optimizer and meta-optimizer state,
returns, losses and the meta-gradient stay float32.
"""

import gymnasium
import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad import agents
from tf_metagrad import envs
from tf_metagrad.agents import acting
from tf_metagrad.agents import config as config_lib
from tf_metagrad.agents import networks
from tests.agents import chain
from tests.agents import helpers

BF16 = dict(compute_dtype="bfloat16")
_U_BF16 = 2.0**-8  # bfloat16: 8 significand bits (7 stored).


def _float_leaves(nest):
  return [x for x in tf.nest.flatten(nest) if x.dtype.is_floating]


def test_variables_and_state_float32_activations_bfloat16():
  spec, space = helpers.spaces(dtype=tf.float32)
  learner = agents.make_learner("stac", spec, space, mlp_hidden_sizes=(8,),
                                head_hidden_sizes=(8,), core_units=4, **BF16)
  net = learner.network
  assert (net.dtype, net.compute_dtype) == ("float32", "bfloat16")
  stored = (list(net.trainable_variables) + _float_leaves(learner.opt_state)
            + list(learner.meta_params().values())
            + _float_leaves(learner.meta_opt_state))
  assert stored and {v.dtype for v in stored} == {tf.float32}

  batch = helpers.random_trajectory(np.random.default_rng(0), 4, 3,
                                    dtype=np.float32)
  batch = batch._replace(core_state=net.initial_state(3))
  assert net.torso(batch.observation).dtype == tf.bfloat16
  assert net.heads.heads[0].policy.linears[0](
      tf.zeros([3, 4])).dtype == tf.bfloat16
  outputs = net(batch.observation, core_state=batch.core_state)
  assert {x.dtype for x in tf.nest.flatten(outputs)} == {tf.float32}
  dist, state = net.acting_step(batch.observation[0], batch.core_state)
  assert dist.logits.dtype == tf.float32
  assert {s.dtype for s in state} == {tf.float32}
  assert {s.dtype for s in net.core_state_spec()} == {tf.float32}
  loss, _ = learner._inner_loss(  # pylint: disable=protected-access
      [tf.convert_to_tensor(v) for v in net.trainable_variables],
      learner.meta_params(), batch, None)
  assert loss.dtype == tf.float32


def _metagradients(seed, unroll, batch, hidden):
  """(float32, bfloat16-compute) STAC meta-gradients, same weights and
  batch, flattened in the same order."""
  spec, space = helpers.spaces(dtype=tf.float32)
  sizes = dict(mlp_hidden_sizes=(hidden, hidden), head_hidden_sizes=(hidden,),
               seed=seed)
  f32 = agents.make_learner("stac", spec, space, **sizes)
  bf16 = agents.make_learner("stac", spec, space, **sizes, **BF16)
  for dst, src in zip(bf16.network.variables, f32.network.variables):
    dst.assign(src)
  data = helpers.random_trajectory(np.random.default_rng(seed), unroll, batch,
                                   dtype=np.float32)
  exact = f32.metagradient(data, data)
  mixed = bf16.metagradient(data, data)
  assert {g.dtype for g in mixed.values()} == {tf.float32}
  names = sorted(exact)
  return (np.concatenate([np.ravel(exact[k]) for k in names]),
          np.concatenate([np.ravel(mixed[k]) for k in names]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stac_metagradient_bfloat16_agrees_with_float32(seed):
  """Error model of the bfloat16 meta-gradient (docs/CONVENTIONS.md).

  Every bfloat16 value is rounded with relative error at most
  u = 2^-8 = 3.9e-3, and a reduction of K terms carried in bfloat16 adds up
  to sqrt(K) u relative to the size of its terms. The meta-gradient goes
  through S = 3 D bfloat16 matmul stages: the forward pass through the D = 4
  layers on a path (2 torso + 2 head layers), the inner backward pass, and
  the backward of that backward (d theta' / d eta). The longest reduction
  is a weight gradient's sum over the K = T B = 320 time-batch rows (the
  layer widths, 64, are shorter). Independent stages add in quadrature, so
  norm-wise

      |g_bf16 - g_f32| / |g_f32| <= sqrt(S K) u = sqrt(12 * 320) 2^-8
                                  = 0.242.

  Seeds 0, 1, 2 measured 0.018, 0.046 and 0.060 here: within the bound by
  4x, and far above float32's rounding (the same bound with u = 2^-24 is
  3.7e-6), so the bfloat16 path is the one measured. A component's sign is
  determined under this model when its size exceeds the bound times the
  norm; every such component must keep its sign (all six did, g_e down to
  2e-4 of the norm, in the three seeds).
  """
  unroll, batch, depth = 20, 16, 4
  exact, mixed = _metagradients(seed, unroll, batch, hidden=64)
  stages, reduction = 3 * depth, unroll * batch
  bound = np.sqrt(stages * reduction) * _U_BF16
  norm = np.linalg.norm(exact)
  error = np.linalg.norm(mixed - exact) / norm
  assert error <= bound, (error, bound)
  # bfloat16 must really be in use: float32 compute would err ~1e-6.
  assert error > _U_BF16 / 4, error
  determined = np.abs(exact) > bound * norm
  assert determined.sum() >= 1
  np.testing.assert_array_equal(np.sign(mixed[determined]),
                                np.sign(exact[determined]))


class _BatchedCatch:
  """K copies of Catch behind the chain's `observation()`/`step()` API."""

  def __init__(self, num_envs, seed):
    self.env = envs.make_batched("catch", num_envs, seed=seed)
    self.obs = self.env.reset(seed=seed)

  def observation(self):
    return self.obs

  def step(self, actions):
    out = self.env.step(actions)
    self.obs = out.observation
    return out.reward, np.where(out.terminated, 0.0, 1.0).astype(np.float32)


def _greedy_catch_return(network, episodes=200, seed=123):
  """Mean return of head 0's greedy policy over `episodes` Catch episodes
  (each lasts rows - 1 = 9 steps)."""
  env = envs.make_batched("catch", episodes, seed=seed)
  obs = env.reset(seed=seed)
  greedy = tf.function(acting.Policy(network).greedy, autograph=False)
  total = np.zeros(episodes)
  done = np.zeros(episodes, bool)
  for _ in range(9):
    out = env.step(greedy(tf.constant(obs)).numpy())
    obs = out.observation
    total += np.where(done, 0.0, out.reward)
    done |= out.terminated | out.truncated
  assert done.all()
  return float(total.mean())


def test_stac_with_bfloat16_compute_learns_catch():
  """STAC (chain.SMALL sizes, bfloat16 compute) on 32 copies of Catch,
  20-step unrolls, actor weights 3 updates behind: 120 learner steps (77k
  frames). Here the greedy return went from -0.59 (untrained) to 1.0 by
  step 40 with bfloat16, as float32 does by about step 50."""
  spec = tf.TensorSpec([10, 5], tf.float32)
  space = gymnasium.spaces.Discrete(3)
  learner = agents.make_learner("stac", spec, space,
                                **dict(chain.SMALL, **BF16))
  behaviour = networks.make_network(learner.config, spec, space)
  sample = tf.function(acting.Policy(behaviour).sample, autograph=False)
  policy = type("P", (), {"sample": staticmethod(sample)})
  env = _BatchedCatch(32, seed=0)
  before = _greedy_catch_return(learner.network)
  meta0 = {k: v.numpy() for k, v in learner.meta_params().items()}
  for step in range(120):
    if step % 3 == 0:
      for dst, src in zip(behaviour.variables, learner.network.variables):
        dst.assign(src)
    metrics = learner.step(chain.rollout(policy, env, 20, step))
  after = _greedy_catch_return(learner.network)
  assert before < 0.0, before
  assert after >= 0.9, (before, after)
  assert float(metrics["skipped_updates"]) == 0
  # The updates were written back without leaving float32 anywhere.
  stored = (list(learner.trainable_variables)
            + _float_leaves(learner.opt_state)
            + _float_leaves(learner.meta_opt_state))
  assert {v.dtype for v in stored} == {tf.float32}
  for name, value in learner.meta_params().items():
    assert not np.allclose(meta0[name], value.numpy()), name


def test_bfloat16_policy_exports(tmp_path):
  # pylint: disable=g-import-not-at-top
  from tf_metagrad.serving import export_policy
  from tests.serving import helpers as export_helpers
  spec, learner, _, _ = export_helpers.make_run(
      tmp_path / "run", core_units=4, **BF16)
  path = export_policy.export(learner, spec, 0, str(tmp_path / "policy"))
  loaded = tf.saved_model.load(path)
  obs = export_helpers.observations([10, 5], batch=3)
  state = loaded.get_initial_state(3)
  assert {s.dtype for s in state.values()} == {tf.float32}
  out = loaded.greedy_action(obs, state)
  policy = acting.Policy(learner.network)
  action, next_state = policy.greedy_step(obs, policy.initial_state(3))
  np.testing.assert_array_equal(out["action"].numpy(), action.numpy())
  # The SavedModel's graph and this eager call round differently (grappler
  # fuses ops); each is within sqrt(K) u of exact, norm-wise, with K = 50
  # the longest reduction (the flattened 10 x 5 board).
  bound = 2 * np.sqrt(50) * _U_BF16
  for name, value in zip(sorted(out["next_state"]), next_state):
    assert out["next_state"][name].dtype == tf.float32
    exported = out["next_state"][name].numpy()
    error = np.linalg.norm(exported - value.numpy())
    assert error <= bound * np.linalg.norm(value.numpy()), (name, error)
  sampled = loaded.action(obs, tf.constant([1, 2], tf.int64), state)
  assert sampled["log_prob"].dtype == tf.float32
  assert np.all(np.isfinite(sampled["log_prob"].numpy()))


def test_compute_dtype_validation():
  assert config_lib.dtype_policy(agents.make_config("stac", **BF16)) == (
      "mixed_bfloat16")
  assert config_lib.dtype_policy(agents.make_config("stac")) == "float32"
  with pytest.raises(ValueError, match="compute_dtype='bfloat16' needs "
                     "dtype='float32'"):
    agents.make_config("stac", dtype="float64", **BF16)
  with pytest.raises(ValueError, match="compute_dtype must be None or one "
                     "of"):
    agents.make_config("stac", compute_dtype="float16")
  agents.make_config("stac", dtype="float64", compute_dtype="float64")


def test_float64_on_a_tpu_is_one_line():
  config_lib.check_tpu_dtype("float32")
  with pytest.raises(ValueError) as error:
    config_lib.check_tpu_dtype("float64")
  message = str(error.value)
  assert "\n" not in message
  assert message.startswith("dtype='float64' cannot run on a TPU")
