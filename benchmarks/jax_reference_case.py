"""The TF side of `benchmarks.jax_reference`, without flags: the case file
the JAX worker checks, the worker's run, and the summary line.

Kept apart from the script so that tests (and other benchmarks) can import
it next to `benchmarks.learner_step`, whose flags have the same names.
"""

import json
import os
import subprocess

import numpy as np
import tensorflow as tf

# The networks (of `benchmarks.common.NETWORKS`) the JAX port implements.
NETWORKS = ("mlp", "resnet")
_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "jax_reference_worker.py")
JAX_PYTHON_ENV = "TF_METAGRAD_JAX_PYTHON"
# Config fields the JAX port reads (None is written as NaN).
_HYPERPARAMETERS = (
    "gamma", "lambda_", "alpha", "g_v", "g_p", "g_e", "g_kl",
    "clip_rho_threshold", "clip_pg_rho_threshold", "reward_clip",
    "learning_rate", "rmsprop_decay", "rmsprop_epsilon", "max_grad_norm",
    "meta_learning_rate", "meta_b1", "meta_b2", "meta_epsilon")
# What the JAX port assumes of the config; anything else is refused.
_ASSUMED = dict(dtype="float32", compute_dtype=None, core_units=0,
                head_hidden_sizes=(), decay_steps=0, distributional=False,
                n_step=None, outer_batch="same", meta_max_grad_norm=None,
                differentiate_optimizer_state=True)

def agent_names(agent: str):
  return ["stac", "impala"] if agent == "both" else [agent]


def check_config(config) -> None:
  """Raises ValueError unless the JAX port covers `config`."""
  wrong = {k: getattr(config, k) for k, v in _ASSUMED.items()
           if getattr(config, k) != v}
  if getattr(config, "separate_alphas", False):
    wrong["separate_alphas"] = True
  if wrong:
    raise ValueError(f"The JAX port assumes {_ASSUMED}; this config has "
                     f"{wrong}.")


def _state(learner):
  """(params, RMSProp mean squares, eta by name, Adam state by name)."""
  params = [v.numpy() for v in learner.network.trainable_variables]
  opt = [m.numpy() for m in tf.nest.flatten(learner.opt_state)]
  meta = learner._meta_variables()  # pylint: disable=protected-access
  names = sorted(meta)
  # The meta-optimizer state is aligned with tf.nest.flatten(meta), which
  # orders a dict by its sorted keys.
  flat = tf.nest.flatten(learner.meta_opt_state)
  meta_opt = {n: tuple(x.numpy() for x in flat[3 * i:3 * i + 3])
              for i, n in enumerate(names)}
  return params, opt, {n: meta[n].numpy() for n in names}, meta_opt


def _write_state(arrays, prefix, state):
  params, opt, meta, meta_opt = state
  for i, p in enumerate(params):
    arrays[f"{prefix}/params/{i:03d}"] = p
  for i, m in enumerate(opt):
    arrays[f"{prefix}/opt/{i:03d}"] = m
  for name, value in meta.items():
    arrays[f"{prefix}/meta/{name}"] = value
    for field, x in zip(("count", "mu", "nu"), meta_opt[name]):
      arrays[f"{prefix}/meta_opt/{name}/{field}"] = x


def export_case(learners, batch, warm_batch, check_steps: int, path: str):
  """Steps each learner and writes the case the worker checks to `path`.

  Args:
    learners: name -> learner, all on the same network and seed.
    batch: the benchmark batch (the compared step's).
    warm_batch: the batch of the `check_steps` steps before it.
    check_steps: steps on `warm_batch` first.
    path: the .npz to write.

  Returns:
    The dict of arrays written.
  """
  arrays = {"agents": np.array(list(learners))}
  for name, value in batch._asdict().items():
    if name in ("observation", "action", "reward", "discount",
                "behaviour_log_prob"):
      arrays[f"batch/{name}"] = np.asarray(value)
  for name, learner in learners.items():
    check_config(learner.config)
    if "param_names" not in arrays:
      arrays["param_names"] = np.array(
          [v.name for v in learner.network.trainable_variables])
      for field in _HYPERPARAMETERS:
        value = getattr(learner.config, field, 0.0)
        arrays[f"config/{field}"] = np.float64(
            np.nan if value is None else value)
    for _ in range(check_steps):
      learner.step(warm_batch)
    old = _state(learner)
    metrics = learner.step(batch)
    new = _state(learner)
    if old[2]:
      arrays[f"{name}/meta_names"] = np.array(list(old[2]))
    _write_state(arrays, f"{name}/old", old)
    _write_state(arrays, f"{name}/new", new)
    for key in ("inner_loss", "outer_loss", "grad_norm"):
      if key in metrics:
        arrays[f"{name}/metrics/{key}"] = np.asarray(metrics[key])
    if float(metrics["skipped_updates"]):
      raise RuntimeError(f"{name}: TF skipped a non-finite update.")
  np.savez(path, **arrays)
  return arrays


def jax_python(flag_value):
  """The JAX interpreter from the flag or the environment.

  Raises:
    ValueError: neither names one (the message is the script's one error
      line).
  """
  python = flag_value or os.environ.get(JAX_PYTHON_ENV)
  if not python:
    raise ValueError(
        f"jax_reference: no JAX python: pass --jax_python=/path/to/python or "
        f"set {JAX_PYTHON_ENV} (install it from "
        f"benchmarks/jax_requirements.txt).")
  return python


def run_worker(python, case_path, agents, repeats, warmup, timeout_s,
               tolerance=None, float64_reference=False):
  """Runs the worker; returns its parsed `jax_result=` JSON.

  Its other output lines (the checks, its timings) are printed; a failed
  check or run raises RuntimeError with its output. `tolerance` None keeps
  the worker's default for the network; `float64_reference` also prints
  each side's distance to a float64 step (see the worker's docstring).
  """
  env = dict(os.environ)
  env.setdefault("JAX_PLATFORMS", "cpu")
  cmd = [python, _WORKER, f"--case={case_path}",
         f"--agents={','.join(agents)}", f"--repeats={repeats}",
         f"--warmup={warmup}"]
  if tolerance is not None:
    cmd.append(f"--tolerance={tolerance}")
  if float64_reference:
    cmd.append("--float64_reference")
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          timeout=timeout_s, check=False)
  except subprocess.TimeoutExpired:
    raise RuntimeError(f"jax_reference: the JAX worker took more than "
                       f"{timeout_s} s (--timeout_s).") from None
  result = None
  for line in proc.stdout.splitlines():
    if line.startswith("jax_result="):
      result = json.loads(line[len("jax_result="):])
    else:
      print(line, flush=True)
  if proc.returncode or result is None:
    raise RuntimeError(
        f"jax_reference: the JAX worker failed (exit {proc.returncode})"
        + (f":\n{proc.stderr[-3000:]}" if proc.stderr.strip() else "."))
  return result


def summary_line(network, agents, tf_ms, jax_ms, compile_s, max_diff,
                 version):
  """The machine-readable last line (see the module docstring)."""
  parts = [f"network={network}"]
  if "stac" in agents:
    parts += [f"agent=stac tf_step_ms={tf_ms['stac']:.3f}",
              f"jax_step_ms={jax_ms['stac']:.3f}",
              f"tf_over_jax={tf_ms['stac'] / jax_ms['stac']:.3f}"]
  if "impala" in agents:
    parts += [f"impala_tf_ms={tf_ms['impala']:.3f}",
              f"impala_jax_ms={jax_ms['impala']:.3f}",
              f"impala_tf_over_jax={tf_ms['impala'] / jax_ms['impala']:.3f}"]
  if len(agents) == 2:
    parts.append(
        f"jax_stac_over_impala={jax_ms['stac'] / jax_ms['impala']:.3f}")
  parts += [f"jax_compile_s={','.join(f'{compile_s[a]:.2f}' for a in agents)}",
            f"max_rel_diff={max_diff:.2g}", f"jax_version={version}"]
  return " ".join(parts)
