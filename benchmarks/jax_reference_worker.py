r"""JAX/XLA port of our IMPALA and STAC learner steps (the worker of
`benchmarks.jax_reference`; issue #16).

Usage (normally started by `benchmarks.jax_reference`, which writes the case):
  JAX_PLATFORMS=cpu /path/to/jax/python benchmarks/jax_reference_worker.py \
      --case=case.npz [--agents=stac,impala] [--repeats=10] [--warmup=2] \
      [--tolerance=T] [--float64_reference]

This file imports only numpy and, inside the functions that need it, jax: no
tensorflow and nothing of tf_metagrad, so it runs in a separate virtual
environment with JAX (see benchmarks/jax_requirements.txt) while our venv
keeps TF 2.15's numpy < 2. The maths is written from our TF code, not from
rlax or optax:

- network: `networks.torsos.MLPTorso` (ReLU after every layer) or
  `AtariResNetTorso` (uint8 / 255, per section conv3x3 SAME, max-pool 3x3
  stride 2 SAME, two residual blocks x + conv(relu(conv(relu(x)))), then
  ReLU, flatten in HWC order, dense + ReLU), then linear policy logits and a
  linear scalar value (`--head_hidden_sizes=`, IMPALA's heads); the layer
  sizes are read off the parameter shapes;
- loss: `agents.losses.actor_critic_loss` with `ops.vtrace` (leaky V-trace,
  rho-bar = pg rho-bar = 1, the trace recursion unrolled over T as
  `ops._recursion` does) and the categorical log-prob, entropy and KL of
  `ops.policy`; rewards clipped to [-1, 1]; sums over T and B;
- update (`agents.base.Learner._update`, `meta.engine`): gradient, global
  norm, differentiable clipping to `max_grad_norm` written as
  `tf.clip_by_global_norm` does, RMSProp with epsilon inside the square root
  (`optim.RMSProp`); STAC: eta -> sigmoid (loss weights times their outer
  value, `ActorCriticLearner._transform`), `jax.grad` of the outer loss
  (fixed outer hyperparameters, advantage stop-gradiented, plus
  g_kl KL(pi_theta' || pi_theta)) through the inner update including the
  RMSProp statistics, then Adam on eta (epsilon outside the root, bias
  correction with the step count); every new value is kept only if the
  losses, the inner gradient norm and the meta-gradient are finite, as
  `_update` does.

One `jax.jit` function per agent takes (params, opt_state, meta,
meta_opt_state, batch) and returns the new ones plus the scalars the check
compares (IMPALA has empty meta and meta_opt_state); the state buffers are
donated. Not computed, because the TF step only logs them: the value,
policy and entropy parts and mean_vs as separate metrics, the meta values
after the update, meta_grad_norm (meta_max_grad_norm is None by default, so
the norm clips nothing), the KL as a metric, and the counters
learner_steps / skipped_updates. The old policy of STAC's KL term is taken
from the inner loss's forward pass; TF's `_outer_loss` runs the network at
the old parameters a second time for it (same values).

The same-work check: from the TF learner's state before one step and the
batch, one JAX step must give TF's state after it. Since a step moves the
parameters by ~1e-3 of their size, comparing new values would hide any
error below that; each array is compared by its change instead:
  err = max (|(new_jax - old) - (new_tf - old)| - 2 ulp) / max |new_tf - old|
where 2 ulp is twice the float32 spacing of the stored value at that
element (both results are float32 numbers, so that much is the resolution
of the comparison itself; `rel_diff` reports the error without it). The
scale is each array's own change for the parameters and the RMSProp mean
squares, and the largest change in the group for eta and Adam's mu and nu
(one scalar per metaparameter, whose change (1 - b)(g - mu) can cancel to
almost nothing for one of them); Adam's count must match exactly; the inner
loss, outer loss and inner gradient norm are compared by plain relative
difference.

Tolerance (`DEFAULT_TOLERANCE`), from float32 rounding as measured: the
two sides sum the same products in different orders (oneDNN vs XLA:CPU).
For the MLP (sums of 10^2..10^3 terms) that left at most 1.5e-5 (7e-6
beyond 2 ulp) on B=32, T=20, so the tolerance is 1e-4; a 1% change of g_e
already gives 4e-4, a 0.1% change of the RMSProp epsilon 5e-4, dropping
the KL term 0.24, dropping the gradient clipping 5. For the ResNet the
gradient of the early convolutions sums ~10^6 terms through 15 layers of
backprop, and TF's float32 step itself is up to 2.2e-3 away from the same
step computed in float64 (`--float64_reference` prints both sides' distance
to it; JAX's float32 step was closer: 1.8e-4 for STAC's parameters, where
TF was 2.0e-3). On another 2-core VM (AMD EPYC, 2026-11-27) the sides
swapped: JAX's IMPALA step was 1.6e-2 from float64 in its parameters and
1.75e-2 in the RMSProp state, TF's 4.4e-4 and 5.1e-4. The check compares
the two float32 steps, so its tolerance must cover the worse side's
rounding on any CPU: 3e-2, under twice the largest seen. The ResNet check
is thus a coarse one, of the conv torso's wiring; the MLP check, at 1e-4,
is the fine one.
"""

import argparse
import json
import statistics
import sys
import time

import numpy as np

_SCALARS = ("inner_loss", "outer_loss", "grad_norm")
# Float32 spacings of the stored values that the check forgives (see
# `delta_error`).
ULPS = 2
# Largest error beyond rounding the check allows (see the module docstring).
DEFAULT_TOLERANCE = {"mlp": 1e-4, "resnet": 3e-2}


# ------------------------------------------------------------- case (numpy)
def load_case(path):
  """The npz written by `benchmarks.jax_reference` as a dict of arrays."""
  with np.load(path, allow_pickle=False) as data:
    return {k: data[k] for k in data.files}


def network_kind(names):
  """"mlp" or "resnet", from the TF variable names."""
  return "mlp" if any(n.startswith("torso/mlp/") for n in names) else "resnet"


def agents_in(case):
  return [str(a) for a in case["agents"]]


def _indexed(case, prefix):
  """Arrays stored as `prefix/000`, `prefix/001`, ... in index order."""
  keys = sorted(k for k in case if k.startswith(prefix + "/")
                and k[len(prefix) + 1:].isdigit())
  return [case[k] for k in keys]


def agent_state(case, agent, when):
  """(params, opt_state, meta, meta_opt_state) of `agent` as numpy.

  `when` is "old" (before the compared step) or "new" (TF's after it).
  params and opt_state (the RMSProp mean squares) are lists in the order of
  the network's trainable variables; meta maps eta names to scalars and
  meta_opt_state maps them to (count, mu, nu).
  """
  base = f"{agent}/{when}"
  params = _indexed(case, base + "/params")
  opt = _indexed(case, base + "/opt")
  names = [str(n) for n in case.get(f"{agent}/meta_names", [])]
  meta = {n: case[f"{base}/meta/{n}"] for n in names}
  meta_opt = {n: tuple(case[f"{base}/meta_opt/{n}/{f}"]
                       for f in ("count", "mu", "nu")) for n in names}
  return params, opt, meta, meta_opt


def batch_of(case):
  return {k.split("/", 1)[1]: case[k] for k in case if k.startswith("batch/")}


def hyperparameters(case):
  """The learner config's numbers the step uses, as Python floats."""
  return {k.split("/", 1)[1]: case[k].item() for k in case
          if k.startswith("config/")}


def delta_error(old, new_ref, new_test, scale=None, ulps=0):
  """max (|(new_test - old) - (new_ref - old)| - slack) / scale.

  Computed in float64 from the float32 values. `scale` defaults to
  max |new_ref - old|; a reference that did not move at all compares the
  test's move with 1 (an absolute error). The slack is `ulps` float32
  spacings of the larger of |new_ref| and |old| at each element: the two
  results are stored in float32, so a difference of an ulp or two of the
  value is the resolution of the comparison itself, however small the
  change (0 gives the plain relative difference).
  """
  old32 = np.asarray(old, np.float32)
  old = old32.astype(np.float64)
  ref = np.asarray(new_ref, np.float64) - old
  test = np.asarray(new_test, np.float64) - old
  if scale is None:
    scale = delta_scale(old, new_ref)
  slack = ulps * np.spacing(np.maximum(
      np.abs(np.asarray(new_ref, np.float32)), np.abs(old32))).astype(
          np.float64)
  diff = np.maximum(np.abs(test - ref) - slack, 0.0)
  diff = float(np.max(diff)) if diff.size else 0.0
  return diff / scale if scale > 0 else diff


def delta_scale(old, new):
  """max |new - old| (0 for empty arrays)."""
  moved = np.abs(np.asarray(new, np.float64) - np.asarray(old, np.float64))
  return float(np.max(moved)) if moved.size else 0.0


def group_error(olds, refs, tests, per_array, ulps=0):
  """Largest `delta_error` of a group of arrays.

  With `per_array` each array is scaled by its own change (the parameters
  and RMSProp mean squares, whose changes are all of the order of the
  learning rate), else by the largest change in the group: eta and Adam's
  moments are one scalar per metaparameter, and a moment's change
  (1 - b) (g - moment) can cancel to almost nothing for one of them.
  """
  triples = list(zip(olds, refs, tests))
  scale = None if per_array else max(delta_scale(o, r) for o, r, _ in triples)
  return max(delta_error(o, r, t, scale, ulps) for o, r, t in triples)


def scalar_error(ref, test):
  ref, test = float(ref), float(test)
  return abs(test - ref) / max(abs(ref), 1e-30)


def compare(old, ref, test, ref_scalars=None, test_scalars=None, ulps=0):
  """Per-group errors of `test` against `ref`, both from `old`.

  Args:
    old, ref, test: (params, opt_state, meta, meta_opt_state) as returned by
      `agent_state` (test may hold JAX arrays).
    ref_scalars, test_scalars: optional dicts of the step's scalars.
    ulps: float32 spacings of slack per element (see `delta_error`).

  Returns:
    dict group -> max error (see `group_error`): "params", "opt" (RMSProp),
    and with eta "meta", "adam_mu", "adam_nu" and "adam_count" (0 when every
    Adam count matches, else 1); scalars by name (relative difference).
  """
  errors = {}
  (op, oo, om, oq), (rp, ro, rm, rq), (tp, to, tm, tq) = old, ref, test
  errors["params"] = group_error(op, rp, tp, True, ulps)
  errors["opt"] = group_error(oo, ro, to, True, ulps)
  if om:
    names = sorted(om)
    groups = {"meta": [(om[n], rm[n], tm[n]) for n in names]}
    for i, field in ((1, "adam_mu"), (2, "adam_nu")):
      groups[field] = [(oq[n][i], rq[n][i], tq[n][i]) for n in names]
    for field, triples in groups.items():
      errors[field] = group_error(*zip(*triples), per_array=False, ulps=ulps)
    errors["adam_count"] = float(any(
        int(rq[n][0]) != int(tq[n][0]) for n in oq))
  for name in (ref_scalars or {}):
    if name in (test_scalars or {}):
      errors[name] = scalar_error(ref_scalars[name], test_scalars[name])
  return errors


def timing_summary(seconds):
  """(median, min, max) in milliseconds."""
  ms = [1e3 * s for s in seconds]
  return statistics.median(ms), min(ms), max(ms)


# ------------------------------------------------------------------- JAX
def _network_fns(jnp, lax, names):
  """forward(params, observation [T+1, B, ...]) -> (logits, values).

  `names` are the TF variable names of the parameters, in order; they say
  which layer each array belongs to.
  """
  index = {n.split(":")[0]: i for i, n in enumerate(names)}

  def get(params, name):
    return params[index[name]]

  def linear(params, prefix, x):
    return (jnp.tensordot(x, get(params, prefix + "/kernel"), axes=1)
            + get(params, prefix + "/bias"))

  mlp_layers = sorted(
      (int(k.split("linear_")[1].split("/")[0]), k.rsplit("/", 1)[0])
      for k in index if k.startswith("torso/mlp/") and k.endswith("/kernel"))
  sections = sorted(
      int(k.split("_")[1]) for k in index
      if k.startswith("torso/section_") and k.endswith("_conv/kernel")
      and "block" not in k)
  blocks = 1 + max((int(k.split("block_")[1].split("_")[0]) for k in index
                    if "block_" in k), default=-1)

  def conv(params, prefix, x):
    y = lax.conv_general_dilated(
        x, get(params, prefix + "/kernel"), window_strides=(1, 1),
        padding="SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + get(params, prefix + "/bias")

  def resnet(params, obs):
    leading = obs.shape[:-3]
    x = obs.reshape((-1,) + obs.shape[-3:]).astype(params[0].dtype) / 255.0
    for s in sections:
      x = conv(params, f"torso/section_{s}_conv", x)
      x = lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1),
                            (1, 2, 2, 1), "SAME")
      for b in range(blocks):
        y = conv(params, f"torso/section_{s}_block_{b}_conv_0",
                 jax_relu(jnp, x))
        x = x + conv(params, f"torso/section_{s}_block_{b}_conv_1",
                     jax_relu(jnp, y))
    x = jax_relu(jnp, x).reshape((x.shape[0], -1))
    x = jax_relu(jnp, linear(params, "torso/linear", x))
    return x.reshape(leading + x.shape[-1:])

  def mlp(params, obs):
    x = obs.reshape(obs.shape[:2] + (-1,)).astype(params[0].dtype)
    for _, prefix in mlp_layers:
      x = jax_relu(jnp, linear(params, prefix, x))
    return x

  torso = mlp if mlp_layers else resnet

  def forward(params, obs):
    features = torso(params, obs)
    logits = linear(params, "heads/head_0/policy/linear_0", features)
    values = linear(params, "heads/head_0/value/linear_0", features)[..., 0]
    return logits, values

  return forward


def jax_relu(jnp, x):
  """ReLU whose derivative at 0 is 0, as TF's ReluGrad (jnp.maximum would
  give 1/2 there)."""
  return jnp.where(x > 0, x, jnp.zeros_like(x))


def _mul_no_nan(jnp, x, y):
  """tf.math.multiply_no_nan: 0 where y == 0, whatever x is."""
  return jnp.where(y == 0, jnp.zeros_like(x), x * y)


def _loss_fns(jax, hp):
  """actor_critic_loss and the categorical policy maths."""
  jnp, lax = jax.numpy, jax.lax

  def log_softmax(logits):
    shifted = logits - lax.stop_gradient(jnp.max(logits, -1, keepdims=True))
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), -1, keepdims=True))

  def leaky(ratios, threshold, alpha):
    truncated = jnp.minimum(threshold, ratios)
    if alpha is None:  # Python alpha 1: classic V-trace, as ops.vtrace.
      return truncated
    return truncated + _mul_no_nan(jnp, ratios - truncated, 1.0 - alpha)

  def vtrace(log_rhos, discounts, rewards, values, bootstrap, lambda_, alpha):
    ratios = jnp.exp(log_rhos)
    rhos = leaky(ratios, hp["clip_rho_threshold"], alpha)
    cs = lambda_ * leaky(ratios, 1.0, alpha)
    pg_rhos = leaky(ratios, hp["clip_pg_rho_threshold"], alpha)
    next_values = jnp.concatenate([values[1:], bootstrap[None]], 0)
    deltas = rhos * (rewards + discounts * next_values - values)
    factors = discounts * cs
    acc, out = jnp.zeros_like(bootstrap), []
    for t in reversed(range(values.shape[0])):  # Unrolled, as _recursion.
      acc = deltas[t] + factors[t] * acc
      out.append(acc)
    vs = values + jnp.stack(out[::-1])
    next_vs = jnp.concatenate([vs[1:], bootstrap[None]], 0)
    return vs, pg_rhos * (rewards + discounts * next_vs - values)

  def head_loss(logits, values, batch, zeta, inner):
    """Algorithm 1 at one parameter point (reference = own outputs)."""
    policy_logp = log_softmax(logits[:-1])
    actions = batch["action"][..., None]
    log_pi = jnp.take_along_axis(policy_logp, actions, -1)[..., 0]
    ref_logp = lax.stop_gradient(log_pi)
    log_rhos = lax.stop_gradient(ref_logp - batch["behaviour_log_prob"])
    targets = lax.stop_gradient(values)
    rewards = batch["reward"]
    if hp["reward_clip"] is not None:
      rewards = jnp.clip(rewards, -hp["reward_clip"], hp["reward_clip"])
    vs, advantages = vtrace(log_rhos, batch["discount"] * zeta["gamma"],
                            rewards, targets[:-1], targets[-1],
                            zeta["lambda_"], zeta["alpha"])
    value_loss = zeta["g_v"] * jnp.sum(jnp.square(vs - values[:-1]))
    if not inner:
      advantages = lax.stop_gradient(advantages)
    policy_loss = -zeta["g_p"] * jnp.sum(log_pi * advantages)
    entropy = -jnp.sum(jnp.exp(policy_logp) * policy_logp, -1)
    entropy_loss = -zeta["g_e"] * jnp.sum(entropy)
    return value_loss + policy_loss + entropy_loss

  def kl(p_logits, q_logits):
    p, q = log_softmax(p_logits), log_softmax(q_logits)
    return jnp.sum(jnp.exp(p) * (p - q))

  return head_loss, kl


def make_steps(jax, hp, names, meta_names):
  """The jitted IMPALA and STAC steps (see the module docstring)."""
  jnp = jax.numpy
  forward = _network_fns(jnp, jax.lax, names)
  head_loss, kl = _loss_fns(jax, hp)
  outer = dict(gamma=hp["gamma"], lambda_=hp["lambda_"],
               alpha=None if hp["alpha"] == 1.0 else hp["alpha"],
               g_v=hp["g_v"], g_p=hp["g_p"], g_e=hp["g_e"])

  def inner_loss(params, zeta, batch):
    logits, values = forward(params, batch["observation"])
    return head_loss(logits, values, batch, zeta, inner=True), logits

  def clipped_gradient(params, zeta, batch):
    (loss, logits), grads = jax.value_and_grad(inner_loss, has_aux=True)(
        params, zeta, batch)
    norm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in grads))
    clip = hp["max_grad_norm"]
    if clip is not None:  # tf.clip_by_global_norm's scale.
      scale = clip * jnp.minimum(1.0 / norm, 1.0 / clip) + (norm - norm)
      grads = [g * scale for g in grads]
    return loss, logits, grads, norm

  def rmsprop(grads, mean_squares, params):
    decay, eps, lr = hp["rmsprop_decay"], hp["rmsprop_epsilon"], hp[
        "learning_rate"]
    new_ms = [decay * m + (1.0 - decay) * jnp.square(g)
              for g, m in zip(grads, mean_squares)]
    new_params = [p - lr * (g * jax.lax.rsqrt(m + eps))
                  for p, g, m in zip(params, grads, new_ms)]
    return new_params, new_ms

  def finite(*xs):
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x))
                              for x in jax.tree_util.tree_leaves(xs)]))

  def kept(ok, new, old):
    return jax.tree_util.tree_map(lambda n, o: jnp.where(ok, n, o), new, old)

  def impala_step(params, opt_state, meta, meta_opt_state, batch):
    loss, _, grads, norm = clipped_gradient(params, outer, batch)
    new_params, new_ms = rmsprop(grads, opt_state, params)
    ok = finite(loss, norm)
    new_params, new_ms = kept(ok, (new_params, new_ms), (params, opt_state))
    return (new_params, new_ms, meta, meta_opt_state,
            {"inner_loss": loss, "grad_norm": norm})

  def transform(meta):
    zeta = dict(outer)
    for name in meta_names:
      value = jax.nn.sigmoid(meta[name])
      zeta[name] = value * hp[name] if name in ("g_v", "g_p", "g_e") else value
    return zeta

  def outer_loss(meta, params, opt_state, batch):
    loss, logits, grads, norm = clipped_gradient(params, transform(meta),
                                                 batch)
    new_params, new_ms = rmsprop(grads, opt_state, params)
    new_logits, new_values = forward(new_params, batch["observation"])
    total = head_loss(new_logits, new_values, batch, outer, inner=False)
    if hp["g_kl"]:
      total += hp["g_kl"] * kl(new_logits[:-1],
                               jax.lax.stop_gradient(logits[:-1]))
    return total, (new_params, new_ms, loss, norm)

  def adam(grads, state, meta):
    b1, b2, eps, lr = (hp["meta_b1"], hp["meta_b2"], hp["meta_epsilon"],
                       hp["meta_learning_rate"])
    new_meta, new_state = {}, {}
    for name in meta_names:
      g, (count, mu, nu) = grads[name], state[name]
      count = count + 1
      k = count.astype(jnp.float32)
      mu = b1 * mu + (1.0 - b1) * g
      nu = b2 * nu + (1.0 - b2) * jnp.square(g)
      mu_hat = mu / (1.0 - jnp.power(jnp.float32(b1), k))
      nu_hat = nu / (1.0 - jnp.power(jnp.float32(b2), k))
      new_meta[name] = meta[name] - lr * (mu_hat / (jnp.sqrt(nu_hat) + eps))
      new_state[name] = (count, mu, nu)
    return new_meta, new_state

  def stac_step(params, opt_state, meta, meta_opt_state, batch):
    (out_loss, (new_params, new_ms, loss, norm)), meta_grads = (
        jax.value_and_grad(outer_loss, has_aux=True)(meta, params, opt_state,
                                                     batch))
    new_meta, new_meta_state = adam(meta_grads, meta_opt_state, meta)
    ok = finite(loss, norm, out_loss, meta_grads)
    new = kept(ok, (new_params, new_ms, new_meta, new_meta_state),
               (params, opt_state, meta, meta_opt_state))
    return new + ({"inner_loss": loss, "outer_loss": out_loss,
                   "grad_norm": norm},)

  jit = lambda f: jax.jit(f, donate_argnums=(0, 1, 2, 3))  # pylint: disable=unnecessary-lambda-assignment
  return {"impala": jit(impala_step), "stac": jit(stac_step)}


def _device_state(jax, state):
  params, opt, meta, meta_opt = state
  put = lambda x: jax.device_put(np.array(x))  # pylint: disable=unnecessary-lambda-assignment
  return ([put(p) for p in params], [put(m) for m in opt],
          {n: put(v) for n, v in meta.items()},
          {n: tuple(put(x) for x in v) for n, v in meta_opt.items()})


def _cast_state(state, dtype):
  """A numpy state with its floating arrays in `dtype` (counts stay int)."""
  params, opt, meta, meta_opt = state
  return ([p.astype(dtype) for p in params], [m.astype(dtype) for m in opt],
          {n: v.astype(dtype) for n, v in meta.items()},
          {n: (c, mu.astype(dtype), nu.astype(dtype))
           for n, (c, mu, nu) in meta_opt.items()})


def float64_reference(jax, hp, names, meta_names, batch, checked):
  """Prints how far TF's and JAX's float32 steps are from the same JAX step
  run in float64, per group: which side float32 rounding moved more.

  Args:
    checked: agent -> (old state, TF's new state, JAX's float32 new state).
  """
  batch64 = {k: v.astype(np.float64) if v.dtype == np.float32 else v
             for k, v in batch.items()}
  with jax.enable_x64(True):
    steps = make_steps(jax, hp, names, meta_names)
    for agent, (old, ref, out) in checked.items():
      exact = _host(jax, steps[agent](
          *_device_state(jax, _cast_state(old, np.float64)), batch64))
      tf_err = compare(old, exact[:4], ref)
      jax_err = compare(old, exact[:4], out)
      for group in tf_err:
        print(f"float64 agent={agent} {group} "
              f"tf_vs_float64={tf_err[group]:.3g} "
              f"jax_vs_float64={jax_err[group]:.3g}", flush=True)


def _host(jax, tree):
  return jax.tree_util.tree_map(np.asarray, tree)


def _block(jax, out):
  jax.tree_util.tree_map(lambda x: x.block_until_ready(), out)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--case", required=True)
  parser.add_argument("--agents", default="")
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--tolerance", type=float, default=None,
                      help="default: %s by network" % DEFAULT_TOLERANCE)
  parser.add_argument("--float64_reference", action="store_true",
                      help="after timing, also run the step in float64 and "
                      "print each side's distance to it")
  args = parser.parse_args(argv)
  import jax  # pylint: disable=import-outside-toplevel

  case = load_case(args.case)
  names = [str(n) for n in case["param_names"]]
  hp = hyperparameters(case)
  hp = {k: (None if isinstance(v, float) and np.isnan(v) else v)
        for k, v in hp.items()}
  agents = [a for a in args.agents.split(",") if a] or agents_in(case)
  tolerance = args.tolerance
  if tolerance is None:
    tolerance = DEFAULT_TOLERANCE[network_kind(names)]
  batch = {k: jax.device_put(v) for k, v in batch_of(case).items()}
  meta_names = [str(n) for n in case.get("stac/meta_names", [])]
  steps = make_steps(jax, hp, names, meta_names)

  result = {"jax_version": jax.__version__, "agents": {}}
  failed, checked = [], {}
  for agent in agents:
    old = agent_state(case, agent, "old")
    ref = agent_state(case, agent, "new")
    start = time.perf_counter()
    out = steps[agent](*_device_state(jax, old), batch)
    _block(jax, out)
    first_s = time.perf_counter() - start
    out = _host(jax, out)
    checked[agent] = (old, ref, out[:4])
    ref_scalars = {k: case[f"{agent}/metrics/{k}"] for k in _SCALARS
                   if f"{agent}/metrics/{k}" in case}
    raw = compare(old, ref, out[:4], ref_scalars, out[4])
    errors = compare(old, ref, out[:4], ref_scalars, out[4], ulps=ULPS)
    for group, err in errors.items():
      ok = err <= tolerance
      print(f"check agent={agent} {group} rel_diff={raw[group]:.3g} "
            f"beyond_rounding={err:.3g} {'ok' if ok else 'FAILED'}",
            flush=True)
      if not ok:
        failed.append(f"{agent}/{group}={err:.3g}")
    result["agents"][agent] = {"first_call_s": first_s,
                               "max_rel_diff": max(raw.values()),
                               "max_rel_diff_beyond_rounding":
                                   max(errors.values()),
                               "errors": raw}
  if failed:
    print(f"jax_reference_worker: same-work check FAILED (tolerance "
          f"{tolerance:g}): {' '.join(failed)}", flush=True)
    return 1

  # Timing: each agent's step from TF's starting state, fed its own outputs
  # (donated), agents taking turns as common.interleaved_times does.
  states = {a: _device_state(jax, agent_state(case, a, "old"))
            for a in agents}
  times = {a: [] for a in agents}
  for i in range(args.warmup + args.repeats):
    for agent in agents:
      start = time.perf_counter()
      out = steps[agent](*states[agent], batch)
      _block(jax, out)
      if i >= args.warmup:
        times[agent].append(time.perf_counter() - start)
      states[agent] = out[:4]
  for agent in agents:
    median, low, high = timing_summary(times[agent])
    info = result["agents"][agent]
    info.update(median_ms=median, min_ms=low, max_ms=high,
                times_ms=[1e3 * t for t in times[agent]],
                compile_s=info["first_call_s"] - median / 1e3)
    print(f"jax agent={agent} median_ms={median:.3f} min_ms={low:.3f} "
          f"max_ms={high:.3f} compile_s={info['compile_s']:.2f}", flush=True)
  if args.float64_reference:
    float64_reference(jax, hp, names, meta_names, batch_of(case), checked)
  print("jax_result=" + json.dumps(result), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
