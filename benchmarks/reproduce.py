r"""Re-runs the seeds' experiments on CPU and writes CSV + PNG + markdown.

  python -m benchmarks.reproduce --experiment=catch [--seeds=5] [--scale=1.0]

Experiments (each arm x seed is a real run of
`tf_metagrad.training.loop.train`, with Reverb, actor threads and the
learner, except random_walk; see below):
- catch: IMPALA, STAC, FRODO, FRODO + pseudo-label extension on Catch
  (Qiu (2021) figs. 3 and 5), return vs env steps.
- frodo_catch: FRODO's LSTM direction and observation input, each with and
  without the pseudo-label extension, against IMPALA over 1M steps on Catch.
- two_colors: DrMG vs MG (MGRL) vs QR (DrMG without meta-learning) on the
  two-colors grid world across key-value toggles (Yin et al. (2023) fig. 1):
  the fraction of episodes that take the currently better key
  (`benchmarks.key_choices`) and the recovery after each toggle.
- stac_ablation: STAC self-tuning {} (IMPALA), {gamma}, {gamma, lambda},
  {gamma, lambda, g_v, g_p, g_e} and all six on Catch (STAC fig. 2b in
  small), compared on learning speed (every arm eventually solves Catch).
- meta_trajectories: the metaparameters of STAC and STACX during training on
  Catch (STAC fig. 5a), one curve per metaparameter and head.
- cartpole: IMPALA vs STAC on dmc:cartpole-swingup from features at equal
  env steps.
- random_walk: fixed TD(0), 4-step and 16-step targets vs FRODO and FRODO
  + pseudo-label extension (project and Qiu (2021) optimizers, both LSTM
  directions) on the non-stationary random walk (Qiu (2021) figs. 4 and 6):
  value RMSE against the true values, every arm read at the same env steps;
  results.md reports the mean over the last half of each run and curves.png
  the phase-aligned curve (steps since the last reward switch). This one uses
  a synchronous loop (one environment, on-policy, like Qiu (2021)) because it
  needs the true values at every step; finished runs are kept under
  --workdir/random_walk and reused.

Outputs under --outdir/<experiment>/: curves.csv (mean and 95% band over
seeds on a common env-step grid), curves.png, results.md (final values per
arm). --outdir defaults to a new runs/reproduce-<date>-<time>/ (not
committed); --outdir=docs/results replaces the committed results. Raw run
directories go to --workdir (not committed); `python -m trainers.plot`
draws them with the same bands.
"""

import csv
import json
import os
import platform
import re
import time
from typing import Dict, Optional, Tuple

from absl import app
from absl import flags
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from benchmarks import key_choices
from tf_metagrad.analysis import curves

FLAGS = flags.FLAGS
flags.DEFINE_enum("experiment", "catch",
                  ["catch", "frodo_catch", "two_colors", "stac_ablation",
                   "meta_trajectories",
                   "cartpole", "random_walk"], "Which experiment.")
flags.DEFINE_integer("seeds", 5, "Seeds per arm.")
flags.DEFINE_list("arms", None, "Only these arms of a trainer experiment "
                  "(names as in its results.md, e.g. STAC,IMPALA). "
                  "Default: all.")
flags.DEFINE_float("scale", 1.0, "Multiplies every run's env-step budget.")
flags.DEFINE_string("workdir", "/tmp/tf_metagrad_repro", "Raw run dirs.")
flags.DEFINE_string("outdir", None, "Where results are written (relative "
                    "to the repository root). Default: a new "
                    "runs/reproduce-<date>-<time>/; --outdir=docs/results "
                    "updates the committed results.")

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# arm name -> (agent, config overrides, run options overrides)
Arms = Dict[str, Tuple[str, Dict, Dict]]
_CONTROL_RUN = {"envs_per_actor": 4}
# FRODO's own toy-preset changes (`FrodoConfig.preset_changes`: M = 2,
# learning rates 3e-3 and meta 1e-2, 8 items of 3 x 16 steps) apply to every FRODO arm; the arms
# name only what they change from the trainer's defaults.
_EXT = {"pseudo_label_weight": 1.0, "pseudo_label_normalize": "outer"}
# The agent learning rate of FRODO's toy runs before it became 3e-3.
_LR_2026_11_27 = {"learning_rate": 1e-2}
# Env steps of the whole run between two_colors toggles, and the width of
# the bins its key-choice fractions are counted in.
_TOGGLE_EVERY = 800_000
_KEY_BIN = 25_000


EXPERIMENTS = {
    "catch": dict(env="catch", steps=250_000, metric="episode_return", arms={
        "IMPALA": ("impala", {}, {}),
        "STAC": ("stac", {}, {}),
        # The meta-network's defaults of 2026-11-27 (forward in time,
        # observation input), then back one at a time (issue #17), at the
        # agent learning rate of then.
        "FRODO": ("frodo", dict(_LR_2026_11_27, meta_direction="forward"),
                  {}),
        "FRODO+ext": ("frodo", dict(_EXT, **_LR_2026_11_27,
                                    meta_direction="forward"), {}),
        "FRODO+ext backward": ("frodo", dict(_EXT, **_LR_2026_11_27), {}),
        "FRODO+ext backward, no obs": ("frodo", dict(
            _EXT, **_LR_2026_11_27, use_observation=False), {}),
    }),
    # FRODO with the trainer's defaults against IMPALA over 1M steps, then
    # the meta-network's observation input and its direction changed one at
    # a time, each with and without the pseudo-label extension of Qiu (2021)
    # section 5 (b1 / |L_outer|, b1 = 1).
    "frodo_catch": dict(env="catch", steps=1_000_000, reach=0.8,
                        metric="episode_return", arms={
        "IMPALA": ("impala", {}, {}),
        "FRODO": ("frodo", {}, {}),
        "FRODO+ext": ("frodo", _EXT, {}),
        "FRODO no observation": ("frodo", {"use_observation": False}, {}),
        "FRODO+ext no observation": ("frodo", dict(
            _EXT, use_observation=False), {}),
        "FRODO forward": ("frodo", {"meta_direction": "forward"}, {}),
        "FRODO+ext forward": ("frodo", dict(
            _EXT, meta_direction="forward"), {}),
    }),
    # A 5 x 5 grid with 30-step episodes, where the agents pick the better
    # key in most episodes by 800k steps; the key values swap every 800k
    # steps of the whole run (`_TOGGLE_EVERY`), and each run sees two swaps.
    "two_colors": dict(env="two_colors", steps=2_400_000,
                       env_kwargs=dict(size=5, horizon=30),
                       metric="key_choice", arms={
                           "DrMG": ("drmg", {}, {}),
                           "MG": ("mgrl", {}, {}),
                           "QR": ("drmg", {"variant": "qr"}, {}),
                       }),
    "stac_ablation": dict(env="catch", steps=150_000,
                          metric="episode_return", arms={
                              "{}": ("stac", {"meta_learned": ()}, {}),
                              "{gamma}": ("stac", {"meta_learned": ("gamma",)},
                                          {}),
                              "{gamma,lambda}": (
                                  "stac", {"meta_learned": ("gamma",
                                                            "lambda_")}, {}),
                              "{gamma,lambda,g_v,g_p,g_e}": (
                                  "stac", {"meta_learned": (
                                      "gamma", "lambda_", "g_v", "g_p",
                                      "g_e")}, {}),
                              "all six": ("stac", {}, {}),
                          }),
    "meta_trajectories": dict(env="catch", steps=250_000, metric="meta",
                              arms={"STAC": ("stac", {}, {}),
                                    "STACX": ("stacx", {}, {})}),
    # The dmc preset's 4 copies per actor: 1000-step episodes end every
    # 125 env steps of the whole run instead of every 16k with 2 x 64.
    "cartpole": dict(env="dmc:cartpole-swingup", steps=200_000,
                     metric="episode_return", arms={
                         "IMPALA": ("impala", {}, _CONTROL_RUN),
                         "STAC": ("stac", {}, _CONTROL_RUN),
                     }),
}


def _run(experiment: str, arm: str, agent: str, overrides: Dict,
         run_overrides: Dict, env: str, steps: int, seed: int,
         env_kwargs: Optional[Dict] = None) -> str:
  """Trains one arm/seed (resuming if it already ran) -> its run directory."""
  # pylint: disable=g-import-not-at-top
  from tf_metagrad.training import loop
  from tf_metagrad.training import resolve
  # pylint: enable=g-import-not-at-top
  # Every committed result used 2 actors x 64 copies, the toy preset's value
  # before it became 256 for throughput; fewer copies keep the behaviour
  # policy fresher, which these small-budget comparisons care about.
  run_options = dict({"envs_per_actor": 64}, **run_overrides)
  safe = "".join(c if c.isalnum() else "_" for c in arm)
  logdir = os.path.join(FLAGS.workdir, experiment, safe, f"seed{seed}")
  env_kwargs = dict(env_kwargs or {})
  tally = None
  if env == "two_colors":
    # The toggle clock counts each copy's own steps: a swap every
    # _TOGGLE_EVERY steps of the whole run is one every _TOGGLE_EVERY / K
    # steps of each of the K copies.
    copies = 2 * run_options["envs_per_actor"]
    env_kwargs["toggle_every"] = _TOGGLE_EVERY // copies
    tally = key_choices.KeyTally()
  spec, options = resolve.resolve(
      agent, env, logdir, steps, seed=seed, config_overrides=overrides,
      env_kwargs=env_kwargs, num_actors=2, eval_episodes=0, export=False,
      summary_every_s=2.0, log_every_s=30.0, checkpoint_every_s=1e9,
      **run_options)
  started = time.monotonic()
  if tally is None:
    summary = loop.train(spec, options, log=lambda m: None)
  else:
    with tally.installed():
      summary = loop.train(spec, options, log=lambda m: None)
    tally.write(logdir)
  print(f"{experiment}/{arm}/seed{seed}: {summary['status']} "
        f"env_steps={summary['env_steps']} "
        f"return={summary['episode_return']:.3f} "
        f"({time.monotonic() - started:.0f}s)", flush=True)
  return logdir


def _write(outdir: str, name: str, grid, arms_curves: Dict, ylabel: str,
           title: str, notes: str, reach: Optional[float] = None):
  """curves.csv, curves.png and results.md of a return experiment; with
  `reach`, the table also says when each arm's mean curve first reached
  it and its mean over the last tenth of the run."""
  reading = _reading(os.path.join(outdir, "results.md"))
  os.makedirs(outdir, exist_ok=True)
  bands = {arm: curves.band(c) for arm, c in arms_curves.items()}
  with open(os.path.join(outdir, "curves.csv"), "w", newline="") as f:
    f.write(curves.bands_csv("env_steps", grid, bands))
  fig, ax = plt.subplots(figsize=(7, 4.2))
  for arm, curve in bands.items():
    curves.plot_band(ax, grid, curve, arm)
  ax.set_xlabel("env steps")
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.legend()
  fig.tight_layout()
  fig.savefig(os.path.join(outdir, "curves.png"), dpi=110)
  plt.close(fig)
  header = (f"| arm | seeds | final {ylabel} (mean, 95% band) | "
            f"mean over the run |")
  if reach is not None:
    header += (f" mean over the last tenth (95% band) | env steps at which "
               f"the mean first reaches {reach} |")
  lines = [f"# {title}", "", notes, "", header,
           "|---" * (header.count("|") - 1) + "|"]
  for arm, seeds_curves in arms_curves.items():
    mean, lo, hi = bands[arm]
    last = np.where(~np.isnan(mean))[0]
    final = last[-1] if last.size else -1
    row = (f"| {arm} | {len(seeds_curves)} | {mean[final]:.3f} "
           f"[{lo[final]:.3f}, {hi[final]:.3f}] | {np.nanmean(mean):.3f} |")
    if reach is not None:
      tail = grid > grid[-1] * 0.9
      per_seed = [np.nanmean(c[tail]) for c in seeds_curves]
      m, low, high = (v[0] for v in curves.band(
          [np.array([x]) for x in per_seed]))
      reached = np.flatnonzero(mean >= reach)
      row += (f" {m:.3f} [{low:.3f}, {high:.3f}] | "
              f"{int(grid[reached[0]]) if reached.size else 'never'} |")
    lines.append(row)
  with open(os.path.join(outdir, "results.md"), "w") as f:
    f.write("\n".join(lines) + "\n" + reading)
  print("\n".join(lines), flush=True)


def _trainer_experiment(name: str, outdir: str):
  exp = EXPERIMENTS[name]
  steps = int(exp["steps"] * FLAGS.scale)
  grid = np.linspace(0, steps, exp.get("grid_points", 40) + 1)[1:]
  arms = exp["arms"]
  if FLAGS.arms:
    unknown = [a for a in FLAGS.arms if a not in arms]
    if unknown:
      raise app.UsageError(
          f"--arms={','.join(FLAGS.arms)}: {name} has no arm "
          f"{', '.join(unknown)}; its arms are {', '.join(arms)}.")
    arms = {a: arms[a] for a in FLAGS.arms}
  arms_curves, metas, run_dirs = {}, {}, {}
  for arm, (agent, overrides, run_overrides) in arms.items():
    arms_curves[arm] = []
    for seed in range(FLAGS.seeds):
      logdir = _run(name, arm, agent, overrides, run_overrides, exp["env"],
                    steps, seed, exp.get("env_kwargs"))
      run_dirs.setdefault(arm, []).append(logdir)
      data = curves.read_metrics(logdir)
      arms_curves[arm].append(curves.on_grid(data, "episode_return", grid))
      metas.setdefault(arm, []).append(data)
  outdir = os.path.join(outdir, name)
  notes = (f"{FLAGS.seeds} seeds per arm, {steps} env steps per run on "
           f"`{exp['env']}`; band = mean +- 1.96 standard errors over "
           f"seeds; returns are the mean of the last 100 training episodes.")
  if exp["metric"] == "meta":
    _write_meta(outdir, grid, metas, steps)
    return
  if exp["metric"] == "key_choice":
    print(key_choices.write_results(
        outdir, run_dirs, steps, int(_TOGGLE_EVERY * FLAGS.scale),
        int(_KEY_BIN * FLAGS.scale), 0.75, _two_colors_notes(steps),
        _reading(os.path.join(outdir, "results.md"))), flush=True)
    return
  _write(outdir, name, grid, arms_curves, "episode return",
         f"{name}: return vs env steps", notes, exp.get("reach"))


def _reading(path: str) -> str:
  """The hand-written reading of an earlier results.md (from its first
  "## " heading on), kept when the tables are rewritten; it must then be
  checked against the new numbers."""
  if not os.path.exists(path):
    return ""
  with open(path) as f:
    text = f.read()
  start = text.find("\n## ")
  return "" if start < 0 else text[start:]


def _two_colors_notes(steps: int) -> str:
  every = int(_TOGGLE_EVERY * FLAGS.scale)
  return (
      f"Written by `benchmarks/reproduce.py --experiment=two_colors`: "
      f"{FLAGS.seeds} seeds per arm, {steps} env steps per run on a 5 x 5 "
      f"grid with 30-step episodes; the key values swap every {every} env "
      f"steps of the whole run. Better-key fraction: of the episodes that "
      f"took a key, the share that took the key worth more at that moment "
      f"(counted by the actors' environments, `benchmarks/key_choices.py`),"
      f" in bins of {int(_KEY_BIN * FLAGS.scale)} steps. Return: the mean "
      f"of the last 100 training episodes, read at the bin centres. After "
      f"a toggle: the curves aligned on each toggle and averaged over the "
      f"toggles per seed. Bands: mean +- 1.96 standard errors over seeds.")


def _write_meta(outdir: str, grid, metas: Dict, steps: int):
  os.makedirs(outdir, exist_ok=True)
  fig, axes = plt.subplots(1, len(metas), figsize=(12, 4), sharey=True)
  rows = []
  for ax, (arm, runs_data) in zip(np.atleast_1d(axes), metas.items()):
    data = runs_data[0]  # One seed, like STAC fig. 5a.
    for key in sorted(k for k in data if k.startswith("meta/")
                      and not k.endswith(("/min", "/max"))):
      y = curves.on_grid(data, key, grid)
      name = key[5:]
      if any(name.startswith(w) for w in ("g_v", "g_p", "g_e")):
        # Shown without the outer scaling, as in STAC fig. 5a.
        outer = {"g_v": 0.25, "g_p": 1.0, "g_e": 0.01}[name.split("/")[0]]
        y = y / outer
      ax.plot(grid, y, label=name)
      final = y[~np.isnan(y)][-1] if np.any(~np.isnan(y)) else np.nan
      rows.append(f"| {arm} | {name} | {final:.4f} |")
    ax.set_title(f"{arm} (seed 0)")
    ax.set_xlabel("env steps")
    ax.legend(fontsize=6, ncol=2)
  np.atleast_1d(axes)[0].set_ylabel("inner value (loss weights / outer)")
  fig.tight_layout()
  fig.savefig(os.path.join(outdir, "curves.png"), dpi=110)
  plt.close(fig)
  with open(os.path.join(outdir, "curves.csv"), "w", newline="") as f:
    writer = csv.writer(f)
    keys = []
    for arm, runs_data in metas.items():
      keys += [(arm, k) for k in sorted(runs_data[0]) if k.startswith("meta/")]
    writer.writerow(["env_steps"] + [f"{a} {k}" for a, k in keys])
    for i, x in enumerate(grid):
      writer.writerow([int(x)] + [
          f"{curves.on_grid(metas[a][0], k, grid)[i]:.5g}"
          for a, k in keys])
  lines = ["# Metaparameters during training (Catch, seed 0)", "",
           f"{steps} env steps; loss weights divided by their outer value.",
           "", "| agent | metaparameter | final value |", "|---|---|---|"]
  lines += rows
  reading = _reading(os.path.join(outdir, "results.md"))
  with open(os.path.join(outdir, "results.md"), "w") as f:
    f.write("\n".join(lines) + "\n" + reading)
  print("\n".join(lines), flush=True)


# Qiu's (2021) optimizers (section 5.2 code, PyTorch RMSprop defaults: decay
# 0.99, epsilon 1e-8 outside the root): agent lr 1e-1, meta lr 1e-2, an LSTM
# without bias. Our RMSProp puts epsilon inside the root, where 1e-16 =
# (1e-8)^2 gives a denominator within a factor sqrt(2) of PyTorch's.
_QIU2021_OPT = dict(learning_rate=1e-1, rmsprop_epsilon=1e-16,
                    meta_optimizer="rmsprop", meta_learning_rate=1e-2,
                    meta_b2=0.99, meta_epsilon=1e-16, meta_use_bias=False)
# The library's defaults at the learning rate every random-walk arm had
# before: RMSProp 1e-2 with epsilon 0.1 inside the root, meta Adam 1e-3.
_PROJECT_OPT = dict(learning_rate=1e-2)


def _random_walk_arms() -> Arms:
  """Fixed n-step targets (and the 4-step one with Qiu's (2021) agent
  optimizer) and the FRODO sweep (optimizers x direction x extension), all
  with M = 5 (Qiu (2021) section 4.1.2: 10 FRODO iterations per 960 steps of
  16-step trajectories)."""
  arms = {name: ("impala", dict(_PROJECT_OPT, n_step=n), {})
          for name, n in (("TD(0)", 1), ("4-step", 4), ("16-step", 16))}
  # Qiu's (2021) agent optimizer on a fixed target: what it costs FRODO's
  # agent apart from anything the meta-network does.
  arms["4-step (Qiu (2021) opt)"] = ("impala", dict(
      n_step=4, learning_rate=_QIU2021_OPT["learning_rate"],
      rmsprop_epsilon=_QIU2021_OPT["rmsprop_epsilon"]), {})
  for opt_name, opt in (("Qiu (2021) opt", _QIU2021_OPT),
                        ("project opt", _PROJECT_OPT)):
    for direction, short in (("forward", "fwd"), ("backward", "bwd")):
      for method, extra in (("FRODO", {}), ("FRODO+ext", _EXT)):
        arms[f"{method} {short} ({opt_name})"] = (
            "frodo", dict(opt, **extra, num_inner_steps=5,
                          meta_direction=direction), {})
  # The project's agent step with Qiu's (2021) meta-network and meta step:
  # whether a faster meta-optimizer helps once the agent's step is not the
  # limit.
  arms["FRODO fwd (project agent opt + Qiu (2021) meta opt)"] = ("frodo", dict(
      _QIU2021_OPT, **_PROJECT_OPT, rmsprop_epsilon=0.1, num_inner_steps=5,
      meta_direction="forward"), {})
  return arms


def last_half_means(grid: np.ndarray, curve: np.ndarray) -> float:
  """Mean of one run's curve over the grid points past half of the run.

  Args:
    grid: env steps `[P]`, increasing.
    curve: `[P]` values at `grid`.

  Returns:
    The mean over points with grid > grid[-1] / 2.
  """
  return float(np.mean(curve[grid > grid[-1] / 2]))


def phase_aligned(grid: np.ndarray, curve: np.ndarray, period: int,
                  every: int) -> np.ndarray:
  """One run's curve against steps since the last reward switch.

  Args:
    grid: env steps `[P]`, multiples of `every`.
    curve: `[P]` values at `grid`.
    period: env steps between switches, a multiple of `every`.
    every: grid spacing.

  Returns:
    `[period // every]`: entry k is the mean of the curve over the points
    of the last half of the run that lie k * every steps after a switch.

  Raises:
    ValueError: if `period` is not a multiple of `every` or a phase has no
      point in the last half.
  """
  if period % every:
    raise ValueError(f"period must be a multiple of every={every}, got "
                     f"{period}.")
  late = grid > grid[-1] / 2
  phase = (grid[late] % period) // every
  bins = period // every
  if np.unique(phase).size != bins:
    raise ValueError(f"the last half of a {int(grid[-1])}-step run does not "
                     f"cover every phase of a {period}-step period.")
  return np.array([np.mean(curve[late][phase == k]) for k in range(bins)])


def _random_walk_run(agent: str, overrides: Dict, seed: int, steps: int,
                     every: int, gamma: float) -> Dict[str, np.ndarray]:
  """One arm and seed on one environment; every metric at each multiple of
  `every` env steps (so every arm shares the grid, whatever its update
  length)."""
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from tf_metagrad import agents
  from tf_metagrad import envs
  from tf_metagrad import types
  # pylint: enable=g-import-not-at-top
  unroll = 16
  env = envs.make_batched("random_walk", 1, seed=seed)
  spec = tf.TensorSpec(env.observation_spec.shape, tf.float32)
  learner = agents.make_learner(
      agent, spec, env.action_space, seed=seed, gamma=gamma,
      reward_clip=None, mlp_hidden_sizes=(32,), head_hidden_sizes=(32,),
      g_e=0.0, **overrides)
  update = unroll * (overrides["num_inner_steps"] + 1 if agent == "frodo"
                     else 1)
  if every % update:
    raise ValueError(f"every={every} must be a multiple of the {update} env "
                     f"steps of one {agent} update.")
  obs = env.reset(seed=seed)
  states = np.eye(env.observation_spec.shape[0], dtype=np.float32)
  out = {"env_steps": [], "rmse": [], "meta_grad_norm": [],
         "target_rmse": []}
  env_steps = 0
  norms, target_errors = [], []
  while env_steps < steps:
    o, r, d, truths = [obs], [], [], []
    for _ in range(update):
      truths.append(env.core.true_values(discount=gamma)[0])
      step = env.step(np.zeros(1, np.int64))  # Ignored: random moves.
      r.append(step.reward)
      d.append(~(step.terminated | step.truncated))
      o.append(step.observation)
    obs = o[-1]
    env_steps += update
    actions = np.zeros((update, 1), np.int32)
    observations = np.stack(o)
    batch = types.Trajectory(
        observation=tf.constant(observations),
        action=tf.constant(actions),
        reward=tf.constant(np.stack(r).astype(np.float32)),
        discount=tf.constant(np.stack(d).astype(np.float32)),
        behaviour_log_prob=tf.constant(
            learner.network.policy(learner.network(observations[:-1]), 0)
            .log_prob(actions).numpy()))
    # Only the last half is reported, and the eager meta-network call costs
    # about as much as the update.
    if agent == "frodo" and env_steps > steps / 2:
      target_errors.append(_target_error(learner, batch, unroll,
                                         np.stack(truths)))
    metrics = learner.step(batch)
    if "meta_grad_norm" in metrics:
      norms.append(float(metrics["meta_grad_norm"]))
    if env_steps % every:
      continue
    values = learner.network.values(learner.network(states), 0).numpy()
    truth = env.core.true_values(discount=gamma)[0]
    out["env_steps"].append(env_steps)
    out["rmse"].append(float(np.sqrt(np.mean((values - truth) ** 2))))
    out["meta_grad_norm"].append(np.mean(norms) if norms else np.nan)
    out["target_rmse"].append(np.mean(target_errors) if target_errors
                              else np.nan)
    norms, target_errors = [], []
  return {k: np.asarray(v, np.float64) for k, v in out.items()}


def _target_error(learner, batch, unroll: int, truths: np.ndarray) -> float:
  """RMSE of G_eta on the first inner trajectory (before this update)
  against the true value of each on-chain state x_t of the regime in force
  at step t."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  first = batch._replace(
      observation=batch.observation[:unroll + 1],
      action=batch.action[:unroll], reward=batch.reward[:unroll],
      discount=batch.discount[:unroll],
      behaviour_log_prob=batch.behaviour_log_prob[:unroll])
  values = learner.network.values(learner.network(first.observation), 0)
  meta = {k: tf.convert_to_tensor(v)
          for k, v in learner._meta_variables().items()}  # pylint: disable=protected-access
  target = learner.targets(meta, first, values[1:]).numpy()[:, 0]
  obs = first.observation.numpy()[:-1, 0]
  on_chain = obs.sum(-1) > 0
  truth = truths[:unroll][np.arange(unroll), obs.argmax(-1)]
  return float(np.sqrt(np.mean((target - truth)[on_chain] ** 2)))


def _random_walk(outdir: str):
  """Fixed n-step targets vs FRODO: value RMSE across reward switches."""
  from tf_metagrad import envs  # pylint: disable=g-import-not-at-top
  steps = int(60_000 * FLAGS.scale)
  every, gamma = 96, 0.99
  switch = envs.make_batched("random_walk", 1, seed=0).core.switch_every
  steps -= steps % switch  # Whole periods: every phase weighs the same.
  arms = _random_walk_arms()
  if FLAGS.arms:
    unknown = [a for a in FLAGS.arms if a not in arms]
    if unknown:
      raise app.UsageError(f"--arms: random_walk has no arm "
                           f"{', '.join(unknown)}; its arms are "
                           f"{', '.join(arms)}.")
    arms = {a: arms[a] for a in FLAGS.arms}
  cache = os.path.join(FLAGS.workdir, "random_walk")
  os.makedirs(cache, exist_ok=True)
  runs = {}
  for arm, (agent, overrides, _) in arms.items():
    runs[arm] = []
    for seed in range(FLAGS.seeds):
      # A finished run is kept, so an interrupted sweep resumes.
      stem = re.sub(r"[^A-Za-z0-9+.-]+", "_", arm).strip("_")
      path = os.path.join(cache, f"{stem}-seed{seed}-{steps}.npz")
      if os.path.exists(path):
        run = dict(np.load(path))
      else:
        started = time.monotonic()
        run = _random_walk_run(agent, overrides, seed, steps, every, gamma)
        np.savez(path, **run)
        print(f"random_walk/{arm}/seed{seed}: {time.monotonic() - started:.0f}s",
              flush=True)
      runs[arm].append(run)
      print(f"random_walk/{arm}/seed{seed}: mean rmse over the last half "
            f"{last_half_means(run['env_steps'], run['rmse']):.4f}",
            flush=True)
  _write_random_walk(os.path.join(outdir, "random_walk"), runs, steps,
                     every, switch, gamma)


def _write_random_walk(outdir: str, runs: Dict, steps: int, every: int,
                       switch: int, gamma: float):
  os.makedirs(outdir, exist_ok=True)
  grid = next(iter(runs.values()))[0]["env_steps"]
  bands = {arm: curves.band([r["rmse"] for r in rs])
           for arm, rs in runs.items()}
  phases = np.arange(0, switch, every)
  phase_bands = {arm: curves.band([
      phase_aligned(grid, r["rmse"], switch, every) for r in rs])
                 for arm, rs in runs.items()}
  with open(os.path.join(outdir, "curves.csv"), "w", newline="") as f:
    f.write(curves.bands_csv("env_steps", grid, bands))
  fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
  colors = plt.get_cmap("tab20").colors
  # The raw curve swings with every switch; a mean over one reward period
  # shows the level (curves.csv keeps the raw points).
  width = switch // every
  kernel = np.ones(width) / width
  for i, arm in enumerate(runs):
    style = {"ls": "--"} if "FRODO" not in arm else {}
    style["color"] = colors[(2 * i) % 20 + (2 * i) // 20]
    smooth = curves.band([np.convolve(r["rmse"], kernel, "valid")
                            for r in runs[arm]])
    curves.plot_band(left, grid[width - 1:], smooth, arm, lw=0.8, **style)
    curves.plot_band(right, phases, phase_bands[arm], arm, **style)
  left.set_xlabel("env steps")
  left.set_ylabel("value RMSE")
  # A diverging start (Qiu's (2021) agent step sizes) would flatten the rest.
  left.set_ylim(0, 1.0)
  left.set_title(f"value RMSE vs env steps, mean over the last {switch} "
                 f"steps (95% band over seeds; axis cut at 1)", fontsize=9)
  right.set_xlabel("env steps since the last reward switch")
  right.set_title("phase-aligned, last half of the run")
  right.legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(os.path.join(outdir, "curves.png"), dpi=110)
  plt.close(fig)
  with open(os.path.join(outdir, "phase.csv"), "w", newline="") as f:
    f.write(curves.bands_csv("steps_since_switch", phases, phase_bands))
  # Qiu's (2021) extension claim is about the start of training (line 223).
  early = grid <= switch * max(1, len(grid) * every // switch // 10)
  lines = ["| arm | seeds | value RMSE, mean over the last half (95% band) "
           f"| mean over the first {int(grid[early][-1])} steps (95% band) "
           "| last half, at a switch | 864 steps after it | "
           "meta-gradient norm, last half | G_eta RMSE vs true values, "
           "last half |", "|---|---|---|---|---|---|---|---|"]
  for arm, rs in runs.items():
    mean, lo, hi = curves.band([
        np.array([last_half_means(grid, r["rmse"])]) for r in rs])
    first = curves.band([np.array([np.mean(r["rmse"][early])])
                           for r in rs])
    norm = np.mean([last_half_means(grid, r["meta_grad_norm"]) for r in rs])
    err = np.mean([last_half_means(grid, r["target_rmse"]) for r in rs])
    lines.append(
        f"| {arm} | {len(rs)} | {mean[0]:.3f} [{lo[0]:.3f}, {hi[0]:.3f}] | "
        f"{first[0][0]:.3f} [{first[1][0]:.3f}, {first[2][0]:.3f}] | "
        f"{phase_bands[arm][0][0]:.3f} | {phase_bands[arm][0][-1]:.3f} | "
        + ("- | - |" if np.isnan(norm) else f"{norm:.3g} | {err:.3f} |"))
  seeds = {len(rs) for rs in runs.values()}
  lines = [
      "# random_walk: value RMSE of fixed targets and FRODO", "",
      f"Written by `benchmarks/reproduce.py --experiment=random_walk` on "
      f"{time.strftime('%Y-%m-%d')} on a {os.cpu_count()}-core "
      f"{platform.machine()} machine (CPU only). "
      f"{'/'.join(map(str, sorted(seeds)))} "
      f"seeds per arm, {steps} env steps per run (whole reward periods), "
      f"one environment, random moves; every arm's RMSE of V over the 5 "
      f"states against the true values of the current regime "
      f"(gamma={gamma}) is taken every {every} env steps (one FRODO update; "
      f"the fixed-target arms update every 16 steps and are read on the "
      f"same grid). Per seed, the mean over the last half of the run; then "
      f"mean and 95% band (1.96 standard errors) over seeds. Reward switch "
      f"every {switch} env steps. The phase columns are the phase-aligned "
      f"curve (right panel of curves.png) at its first and last point.",
      ""] + lines
  reading = _reading(os.path.join(outdir, "results.md"))
  with open(os.path.join(outdir, "results.md"), "w") as f:
    f.write("\n".join(lines) + "\n" + reading)
  print("\n".join(lines), flush=True)


def main(argv):
  del argv
  os.chdir(_ROOT)
  # A new folder by default: the committed docs/results are only replaced
  # when asked for by name.
  outdir = FLAGS.outdir or os.path.join(
      "runs", time.strftime("reproduce-%Y%m%d-%H%M%S"))
  if FLAGS.experiment == "random_walk":
    _random_walk(outdir)
  else:
    _trainer_experiment(FLAGS.experiment, outdir)
  with open(os.path.join(outdir, FLAGS.experiment, "command.json"),
            "w") as f:
    json.dump({"experiment": FLAGS.experiment, "seeds": FLAGS.seeds,
               "scale": FLAGS.scale, "arms": FLAGS.arms}, f)
  print(f"wrote {os.path.join(_ROOT, outdir, FLAGS.experiment)}", flush=True)


if __name__ == "__main__":
  app.run(main)
