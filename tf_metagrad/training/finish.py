"""What a completed run leaves behind: its exported policy (DIR/saved_model)
and the final greedy evaluation, written by the chief alone
(`Cluster.leave`)."""

import os
from typing import Any, Callable, Dict

import numpy as np
import tensorflow as tf

from tf_metagrad import runs
from tf_metagrad.agents import base as agents_base
from tf_metagrad.serving import export_policy
from tf_metagrad.training import greedy_eval
from tf_metagrad.training import options as options_lib
from tf_metagrad.training import outputs

POLICY_DIR = "saved_model"


def has_policy(logdir: str) -> bool:
  """Whether the run in `logdir` holds an exported policy."""
  return tf.io.gfile.exists(os.path.join(logdir, POLICY_DIR, "saved_model.pb"))


def export(learner: agents_base.Learner, spec: runs.RunSpec, env_steps: int,
           logdir: str) -> str:
  """Exports `learner`'s policy into the run directory `logdir`, replacing
  the one there; returns the SavedModel's path."""
  path = os.path.join(logdir, POLICY_DIR)
  export_policy.export(learner, spec, env_steps, path)
  return path


def complete(learner: agents_base.Learner, spec: runs.RunSpec,
             options: options_lib.Options, env_steps: int,
             learner_steps: int, summary: Dict[str, Any],
             reporter: outputs.Reporter, log: Callable[[str], None]) -> None:
  """The chief's end of a completed run: the export (unless
  `options.export` is off) and the final greedy evaluation (unless
  `options.eval_episodes` is 0), recorded in `summary` and `reporter`."""
  if options.export:
    summary["saved_model"] = export(learner, spec, env_steps, options.logdir)
    log(f"exported policy to {summary['saved_model']}")
  if options.eval_episodes > 0:
    seed = spec.seed + greedy_eval.EVAL_SEED_OFFSET
    returns = greedy_eval.evaluate(learner, spec, options.eval_episodes, seed)
    summary["final_eval_mean_return"] = float(np.mean(returns))
    reporter.write_eval(env_steps, learner_steps,
                        summary["final_eval_mean_return"])
    log(f"final_eval_mean_return={summary['final_eval_mean_return']:.4f} "
        f"(std {np.std(returns):.4f} over {len(returns)} greedy episodes)")
