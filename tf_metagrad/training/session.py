"""What the parts of a running training session share: its settings,
processes, counters, reports, stop request and log (`Session`), and the
host's copies of its two counters (`Counts`)."""

import dataclasses
from typing import Callable

from tf_metagrad.distribute import cluster as cluster_lib
from tf_metagrad.training import opening
from tf_metagrad.training import options as options_lib
from tf_metagrad.training import outputs
from tf_metagrad.training import stop_flag


@dataclasses.dataclass
class Counts:
  """Env and learner steps as the host counts them.

  The learner advances both counters in its graph; the host keeps its own
  copies, so that between calls it reads nothing back, and re-reads the
  variables only after a call that failed part-way (its completed steps are
  counted in the graph).

  Attributes:
    env: environment frames consumed.
    learner: learner steps made.
    first_learner: `learner` when the session started.
  """

  env: int = 0
  learner: int = 0
  first_learner: int = 0

  def read(self, trainee: opening.Trainee) -> None:
    """Copies the counters from the variables of `trainee`."""
    self.env = int(trainee.env_steps.numpy())
    self.learner = int(trainee.learner.learner_steps.numpy())

  def start(self, trainee: opening.Trainee) -> None:
    """`read` at the start of a session (which sets `first_learner`)."""
    self.read(trainee)
    self.first_learner = self.learner

  @property
  def new_learner_steps(self) -> int:
    """Learner steps this session made."""
    return self.learner - self.first_learner


@dataclasses.dataclass(frozen=True)
class Session:
  """A running session, as its data plane and step loop see it.

  Attributes:
    options: how it runs (`logdir`: the run directory).
    own_logdir: where this worker writes (`Cluster.working_dir`).
    cluster: the learner's processes.
    counts: the host's counters, kept up to date by the step loop.
    reporter: its metrics, summaries and evaluations.
    stop: its stop request.
    log: one-line logger.
  """

  options: options_lib.Options
  own_logdir: str
  cluster: cluster_lib.Cluster
  counts: Counts
  reporter: outputs.Reporter
  stop: stop_flag.StopFlag
  log: Callable[[str], None]
