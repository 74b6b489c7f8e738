"""A training session of a run, start to end (no flags here; the trainer
program `programs.train` maps its flags onto `training.resolve`).

One process runs the learner and, by default, the Reverb server and actor
threads; a session goes through

1. its opening (`training.opening`): checks and decisions before the first
   write, a finished run's way out, the run (or scratch) directory, the
   learner restored from the run's latest checkpoint;
2. its data plane (`training.data_plane`): server, weights publisher,
   actors, the learner's input and the periodic evaluator, started and
   stopped as one unit;
3. its learner calls (`training.step_loop`), which end with a checkpoint;
4. its end (`Cluster.leave`): a completed run's export and final greedy
   evaluation by the chief (`training.finish`).

Checkpoints hold the learner (network, optimizer and meta-optimizer state,
metaparameters, learner step) and the env-step counter. Which process does
what when the learner spans several is `distribute.cluster`'s to say.
"""

import dataclasses
from typing import Any, Callable, Dict, Optional

import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad.distribute import cluster as cluster_lib
from tf_metagrad.training import data_plane
from tf_metagrad.training import finish
from tf_metagrad.training import opening
from tf_metagrad.training import options as options_lib
from tf_metagrad.training import outputs
from tf_metagrad.training import session as session_lib
from tf_metagrad.training import step_loop
from tf_metagrad.training import stop_flag


def train(spec: runs.RunSpec, options: options_lib.Options,
          strategy: Optional[tf.distribute.Strategy] = None,
          stop: Optional[stop_flag.StopFlag] = None,
          log: Callable[[str], None] = print) -> Dict[str, Any]:
  """Trains (or resumes) the run in `options.logdir`; returns a summary.

  A first session that makes no learner step (stopped by a signal, by
  missing data or by an error first) removes what it wrote to the run
  directory; a session of a run that was there before keeps everything.

  Args:
    spec: the run (`training.resolve` makes it with `options`).
    options: how the session runs.
    strategy: the learner's strategy (default: the current one).
    stop: set to stop the session (default: a flag nothing sets).
    log: one-line logger.

  Returns:
    "status", "env_steps", "learner_steps", "actor_restarts",
    "episode_return" and, where written, "saved_model" and
    "final_eval_mean_return".
  """
  cluster = cluster_lib.Cluster(strategy or tf.distribute.get_strategy())
  run = opening.plan(spec, options, cluster.strategy)
  done = opening.finished_env_steps(run, options)
  if done is not None:
    return opening.already_complete(run, options, done, cluster, log)
  first = opening.FirstSession.of(run, options, cluster)
  counts = session_lib.Counts()
  try:
    return _session(run, options, stop or stop_flag.StopFlag(), log,
                    cluster, counts)
  finally:
    if first is not None and not counts.new_learner_steps:
      first.undo(log)


def _session(run: opening.Plan, options: options_lib.Options,
             stop: stop_flag.StopFlag, log: Callable[[str], None],
             cluster: cluster_lib.Cluster,
             counts: session_lib.Counts) -> Dict[str, Any]:
  """`train` from the first write on; keeps `counts` up to date, also when
  it fails."""
  spec, own_logdir = opening.run_directory(run.spec, options, cluster, log)
  run = dataclasses.replace(run, spec=spec)
  trainee = opening.Trainee(spec, options.logdir, own_logdir, cluster, log)
  counts.start(trainee)
  reporter = outputs.Reporter(own_logdir, cluster.strategy,
                              options.total_env_steps, counts.env)
  reporter.write_config(_resolved_config(spec), counts.env, log)
  session = session_lib.Session(options, own_logdir, cluster, counts,
                                reporter, stop, log)
  with data_plane.DataPlane(session, run, trainee.learner.network) as plane:
    steps = step_loop.StepLoop(session, trainee, plane, run.stride)
    status = steps.run()
  summary = {"status": status, "env_steps": counts.env,
             "learner_steps": counts.learner,
             "actor_restarts": plane.actor_restarts,
             "episode_return": steps.final_row.get("episode_return",
                                                   float("nan"))}
  log(f"training {status}: env_steps={summary['env_steps']} "
      f"learner_steps={summary['learner_steps']}")
  cluster.report_fingerprint(trainee.guarded, log)

  def chief_work():
    if status == "completed":
      finish.complete(trainee.learner, spec, options, counts.env,
                      counts.learner, summary, reporter, log)

  cluster.leave(chief_work)
  return summary


def _resolved_config(spec: runs.RunSpec) -> Dict[str, Any]:
  """The run's whole configuration, as the reports record it: the agent
  config with every default, the run's identity and how it runs."""
  resolved = dataclasses.asdict(runs.agent_config(spec))
  resolved.update(agent=spec.agent, env=spec.env, seed=spec.seed,
                  env_kwargs=spec.env_kwargs)
  resolved.update(spec.run_options)
  return resolved
