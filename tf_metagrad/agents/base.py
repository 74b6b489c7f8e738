"""What every learner shares: variables, the tf.function step, the hooks.

A learner owns the agent network theta, the inner optimizer state, and (for
meta-gradient agents) the metaparameters eta with their meta-optimizer state.
One learner step is one `tf.function`, run through `strategy.run`:

1. the meta-gradient engine takes the M inner updates of theta under a tape
   watching eta and differentiates the outer loss (STAC Algorithm 2 lines
   10-14);
2. theta and the optimizer state take the values the inner loop produced:
   the agent's real update is the very tensors the meta-gradient went
   through, so there is no second update rule that could drift;
3. eta takes one meta-optimizer (Adam) step.

A non-finite loss or gradient anywhere skips both updates (every variable
keeps its value) and increments `skipped_updates`.

A batch may feed several such updates in turn (`updates_per_batch`, from the
config; 2 for DrMG's swapped halves, Yin et al. (2023) section 5.2): `_passes` gives
one (inner batch, outer batch) pair per update, each update starts from the
variables the previous one wrote and advances `learner_steps` by one, and
the step returns the metrics of the last update, as `steps_from_iterator`
does for its last step.

XLA (`jit_compile=True`; "auto", the default, means on under TPUStrategy
and off elsewhere) compiles the replica function, the one given to
`strategy.run`; which strategies can run it compiled, and why, is
`distribute.xla`'s policy.

`steps_from_iterator` runs several learner steps in one `tf.function` call
(a `tf.while_loop` with one `strategy.run` per iteration, the TPU training
loop), so the host waits on the device once per call, not once per step.
Everything a step does on the replicas is that one replica function: the
update, its metrics packed into one vector, and the element's extras
written into a buffer of static shape `[max_steps, ...]`; the metrics are
reduced across replicas once per call. With a runtime step count and
static shapes everywhere else, one compiled program serves every call
(`tests/agents/test_device_programs.py` compiles each function given to
`strategy.run` with XLA and checks that its shapes are static).

Subclasses provide `_meta_variables`, `_inner_loss`, `_outer_loss` and the
metrics of their metaparameters; agents without metaparameters (IMPALA) return
an empty dict from `_meta_variables` and only run the inner loop.
"""

import abc
from typing import Any, Dict, List, Optional, Tuple, Union

import tensorflow as tf

from tf_metagrad import optim
from tf_metagrad import types
from tf_metagrad.agents import config as config_lib
from tf_metagrad.agents import trajectory_checks
from tf_metagrad.distribute import replicas
from tf_metagrad.distribute import xla
from tf_metagrad.meta import engine as engine_lib


def _state_variables(state, name):
  return tf.nest.map_structure(
      lambda t: tf.Variable(t, trainable=False, name=name), state)


class _TraceCache:
  """Concrete functions by call signature.

  A plain object, not a dict: `tf.Module` would track a dict attribute and
  then fail to checkpoint its tuple keys.
  """

  def __init__(self):
    self._by_key = {}

  def __len__(self):
    return len(self._by_key)

  def get(self, key, trace):
    """The function kept for `key`, made by `trace()` the first time."""
    function = self._by_key.get(key)
    if function is None:
      function = self._by_key[key] = trace()
    return function


def _read(nest):
  return tf.nest.map_structure(tf.convert_to_tensor, nest)


def _is_summed(metric: str) -> bool:
  leaf = metric.rsplit("/", 1)[-1]
  return leaf.endswith("loss") or leaf == "kl"


def _summarise(name: str, value: tf.Tensor, out: Dict[str, tf.Tensor]):
  """Scalars as they are; vectors as mean/min/max (the issue's contract)."""
  value = tf.convert_to_tensor(value)
  if value.shape.rank == 0:
    out[name] = value
  else:
    out[name + "/mean"] = tf.reduce_mean(value)
    out[name + "/min"] = tf.reduce_min(value)
    out[name + "/max"] = tf.reduce_max(value)


def _write_row(rows, row, index):
  """`rows` (nest of [N, ...]) with `row` written at position `index`."""
  return tf.nest.map_structure(
      lambda acc, x: tf.tensor_scatter_nd_update(acc, [[index]], x[None]),
      rows, row)


def _zero_rows(x: tf.Tensor, num_rows: int) -> tf.Tensor:
  """Zeros of shape [num_rows] + x.shape, static where x's shape is."""
  if x.shape.is_fully_defined():
    return tf.zeros([num_rows] + x.shape.as_list(), x.dtype)
  return tf.zeros(tf.concat([[num_rows], tf.shape(x)], 0), x.dtype)


class _MetricPacking:
  """A step's scalar metrics as one float32 vector, and back.

  The replica step returns the vector, so that all metrics leave the
  replicas in one cross-replica reduction (`SUM`): summed metrics (losses
  are sums over each replica's shard) enter it as they are, the others
  (identical on every replica) divided by the number of replicas, which
  makes their sum the mean. The order of the keys is fixed when the step is
  traced. A plain object, not a tuple attribute, for `tf.Module`'s sake (see
  `_TraceCache`).
  """

  def __init__(self):
    self.keys: Tuple[str, ...] = ()

  def pack(self, metrics: Dict[str, tf.Tensor],
           num_replicas: int) -> tf.Tensor:
    keys = tuple(metrics)
    if self.keys and keys != self.keys:
      raise ValueError(f"the step's metrics changed from {self.keys} to "
                       f"{keys} between traces.")
    self.keys = keys
    values = []
    for k, v in metrics.items():
      if v.shape.rank != 0:
        raise ValueError(f"metric {k!r} has shape {v.shape}; metrics must "
                         f"be scalars (see _summarise).")
      values.append(v if _is_summed(k) else v / num_replicas)
    return tf.stack(values)

  def unpack(self, vector: tf.Tensor) -> Dict[str, tf.Tensor]:
    return {k: vector[i] for i, k in enumerate(self.keys)}


class Learner(tf.Module, metaclass=abc.ABCMeta):
  """Base learner; see the module docstring.

  The learner owns the in-graph counting of both run counters: its own
  `learner_steps` (one per update, in `_update`) and the trainer's env-step
  variable (advanced by `steps_from_iterator`, in the same graph, after each
  step's update). Counting where the update happens is what makes the
  counters exact: a call that fails part-way (the iterator runs dry at step
  k) leaves its k - 1 completed steps counted and nothing else, so a
  checkpoint taken then resumes exactly where the updates stopped. The host
  keeps its own copies only to avoid a device read after every call, and
  re-reads the variables after a call that failed.

  Args:
    config: the agent's config dataclass (already validated).
    network: the agent network (a built Keras model of ours).
    strategy: a `tf.distribute.Strategy`; variables are created under its
      scope. Defaults to the current (default) strategy.
  """

  def __init__(self, config: config_lib.AgentConfig, network: tf.keras.Model,
               strategy: Optional[tf.distribute.Strategy] = None) -> None:
    super().__init__(name=type(self).__name__)
    self.config = config
    self.strategy = strategy or tf.distribute.get_strategy()
    self.dtype = tf.as_dtype(config.dtype)
    self.network = network
    self.optimizer = optim.RMSProp(
        decay=config.rmsprop_decay, epsilon=config.rmsprop_epsilon)
    self.meta_optimizer = optim.Adam(
        b1=config.meta_b1, b2=config.meta_b2, epsilon=config.meta_epsilon
    ) if config.meta_optimizer == "adam" else optim.RMSProp(
        decay=config.meta_b2, epsilon=config.meta_epsilon)
    self.engine = engine_lib.MetaGradientEngine(
        self.optimizer,
        num_inner_steps=self._num_inner_steps(),
        differentiate_optimizer_state=config.differentiate_optimizer_state,
        max_grad_norm=config.max_grad_norm)
    with self.strategy.scope():
      self.opt_state = _state_variables(
          self.optimizer.init(self.network.trainable_variables), "opt_state")
      meta = self._meta_variables()
      self.meta_opt_state = _state_variables(
          self.meta_optimizer.init(tf.nest.flatten(meta)), "meta_opt_state")
      self.learner_steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                                       name="learner_steps")
      self.skipped_updates = tf.Variable(0, dtype=tf.int64, trainable=False,
                                         name="skipped_updates")
    self.updates_per_batch = config.updates_per_batch()
    self.jit_compile = xla.resolve_jit_compile(
        self.strategy, config.jit_compile,
        getattr(network, "torso_kind", "mlp"))
    self._packing = _MetricPacking()
    self._replica_fn = xla.replica_function(
        self.strategy, self._packed_step, self.jit_compile)
    # autograph=False: the steps branch and loop with tf.cond and
    # tf.while_loop where a tensor decides, and Python `if`/`for` run at
    # trace time anyway; autograph's source conversion of every function
    # the step calls was about half of a small trainer's start-up CPU (a
    # tiny STAC run: 18 s of CPU with it, 10 s without).
    self._step_fn = tf.function(self._cross_replica_step, autograph=False)
    # Traces of `_step_fn` by the batch's type and leaf shapes and dtypes
    # (see `_traced_step`), and of `_iterator_steps_fn` by the iterator's
    # element spec (see `steps_from_iterator`).
    self._traced_steps = _TraceCache()
    self._traced_iterator_steps = _TraceCache()
    self._iterator_step_fn = tf.function(self._iterator_step, autograph=False)
    self._iterator_steps_fn = tf.function(self._iterator_steps,
                                          autograph=False)
    # `_iterator_steps` takes its first step before the loop and the others
    # in the loop's body: as one function called twice, the step is traced
    # once instead of twice (a tiny STAC trainer's first call, profiled:
    # 2.9 s instead of 4.3 s). It holds the strategy.run call, so the
    # replica step's all-reduces stay in the graph that calls strategy.run.
    self._counted_step_fn = tf.function(self._counted_step, autograph=False)

  # ------------------------------------------------------------ agent hooks
  def _num_inner_steps(self) -> int:
    return 1

  @abc.abstractmethod
  def _meta_variables(self) -> Dict[str, Any]:
    """The metaparameters eta as a dict of variables (empty: no meta)."""

  @abc.abstractmethod
  def _inner_loss(self, params: List[tf.Tensor], meta: Dict[str, Any],
                  batch: types.Trajectory,
                  reference: Optional[engine_lib.Reference]
                  ) -> Tuple[tf.Tensor, dict]:
    """L_in(theta=params, eta=meta; batch) and a dict of scalar logs.

    Stop-gradiented quantities are computed at `reference` (None: at
    `params` and `meta`); see `meta.engine`.
    """

  def _outer_loss(self, new_params: List[tf.Tensor],
                  old_params: List[tf.Tensor], batch: types.Trajectory,
                  inner_batches, reference: Optional[engine_lib.Reference]
                  ) -> Tuple[tf.Tensor, dict]:
    """L_out(theta'=new_params; batch); old_params is theta (for the KL)."""
    raise NotImplementedError(f"{type(self).__name__} has no outer loss.")

  def _meta_values(self, meta: Dict[str, Any]) -> Dict[str, tf.Tensor]:
    """Inner values of the metaparameters (after sigmoid/scaling)."""
    return {}

  def _meta_metrics(self, meta: Dict[str, Any]) -> Dict[str, tf.Tensor]:
    """What a step reports under "meta/" (default: `_meta_values`)."""
    return self._meta_values(meta)

  def _split(self, batch) -> Tuple[Any, Any]:
    """(inner batch or list of M batches, outer batch) of one learner step."""
    return batch, batch

  def _passes(self, batch) -> List[Tuple[Any, Any]]:
    """The `updates_per_batch` (inner, outer) pairs a batch feeds, in the
    order their updates are made (default: the one pair of `_split`)."""
    return [self._split(batch)]

  # ---------------------------------------------------------------- public
  def learning_rate(
      self, step: Optional[Union[int, tf.Tensor, tf.Variable]] = None
  ) -> tf.Tensor:
    """The inner learning rate at `step` (default: the learner's step).

    Constant without `decay_steps`, else STAC Table 3's linear decay from
    `learning_rate` to `end_learning_rate` over `decay_steps` learner
    steps, constant after.
    """
    cfg = self.config
    if not cfg.decay_steps:
      return tf.constant(cfg.learning_rate, self.dtype)
    step = self.learner_steps if step is None else step
    return optim.linear_schedule(step, cfg.learning_rate,
                                 cfg.end_learning_rate, cfg.decay_steps,
                                 dtype=self.dtype)

  def meta_params(self) -> Dict[str, tf.Tensor]:
    """Current metaparameters (logits, or meta-network weights) by name."""
    return {k: tf.convert_to_tensor(v)
            for k, v in self._meta_variables().items()}

  def meta_values(self) -> Dict[str, tf.Tensor]:
    """Current inner values of the metaparameters (after sigmoid/scaling);
    empty for agents whose metaparameters are network weights (FRODO)."""
    return self._meta_values(self._meta_variables())

  def step(self, batch: types.Trajectory,
           check: bool = True) -> Dict[str, tf.Tensor]:
    """One learner update on a batch (a per-replica dataset element when
    called with a distributed batch); returns the metrics dict.

    `check=False` skips the host-side checks of `batch` (its structure, and
    the value ranges of eager tensors, which read the batch back): for a
    caller that has checked this very batch before, such as a benchmark
    that times the step the training loop runs (`step_from_iterator`
    checks nothing on the host either). On the MLP benchmark network the
    checks cost 0.5-0.8 ms per step.

    Raises:
      TypeError, ValueError: `batch` is not a trajectory this learner can
        use (see `trajectory_checks`; value ranges only for eager values).
    """
    if check:
      for local in trajectory_checks.local_batches(self.strategy, batch):
        trajectory_checks.check_trajectory(local, self.network, "batch")
    return self._traced_step(batch)(batch)

  def _traced_step(self, batch):
    """`_step_fn`'s concrete function for an eager batch, else `_step_fn`.

    Calling the concrete function skips the argument binding and cache
    lookup `tf.function` does on every call: 0.3-0.4 ms of host time of a
    3-5 ms MLP IMPALA step on a 2-core CPU (0.58-0.70 ms against
    0.23-0.35 ms). Batches that are not all eager tensors (distributed
    values, numpy arrays, or a call from inside a graph) take the
    `tf.function` path, which handles them.
    """
    leaves = tf.nest.flatten(batch)
    if not tf.executing_eagerly() or not all(
        isinstance(t, tf.Tensor) for t in leaves):
      return self._step_fn
    # A nest of another structure with the same leaves gets this concrete
    # function too, whose call then raises: the structure is checked there.
    key = (type(batch),) + tuple((tuple(t.shape), t.dtype) for t in leaves)
    return self._traced_steps.get(
        key, lambda: self._step_fn.get_concrete_function(batch))

  def step_from_iterator(
      self,
      iterator: Union[tf.data.Iterator, tf.distribute.DistributedIterator]
  ) -> Tuple[Dict[str, tf.Tensor], Any]:
    """`step` on the next element `(batch, extras)` of a (distributed)
    dataset iterator, drawn inside the same `tf.function` call.

    Drawing the batch in the graph saves the host a round trip per step
    (building the element's Python objects, then binding them to the step's
    signature), about 1 ms of a 27 ms Catch step in `benchmarks.throughput`.

    Returns:
      (metrics, extras): the step's metrics and the element's second part
      unchanged (the training loop's episode statistics).

    Raises:
      tf.errors.OutOfRangeError / DeadlineExceededError: as `next(iterator)`
        would; no update is made then.
    """
    return self._iterator_step_fn(iterator)

  def steps_from_iterator(
      self,
      iterator: Union[tf.data.Iterator, tf.distribute.DistributedIterator],
      num_steps: int,
      env_steps: Optional[tf.Variable] = None,
      frames_per_step: int = 0,
      max_steps: Optional[int] = None) -> Tuple[Dict[str, tf.Tensor], Any]:
    """`num_steps` learner steps on the next `num_steps` elements of a
    (distributed) iterator, in one `tf.function` call.

    The steps are those `step` would take on the same elements in turn: a
    non-finite batch is skipped, the learning-rate schedule reads the step
    counter each step. `num_steps` enters the graph as a tensor and
    `max_steps` as a constant, so calls with different counts and the same
    `max_steps` share one trace, and every function given to `strategy.run`
    sees only static shapes (what a TPU compiles).

    Each step is one `strategy.run`: the update, and the element's extras
    written into their row, in one replica function. The metrics leave the
    replicas once per call, as one packed vector in one reduction (see
    `_MetricPacking`).

    This method, not its caller, advances `env_steps`, in the graph and
    after each step's update (as `_update` advances `learner_steps`): a call
    that fails at step k has counted exactly the frames of its k - 1
    completed steps, which a host-side `+= num_steps * frames_per_step`
    could only get wrong; the caller's own count is a copy that saves it a
    device read per call (see the class docstring).

    Args:
      iterator: yields `(batch, extras)` like `step_from_iterator`'s.
      num_steps: N >= 1.
      env_steps: optional int64 variable (made under the strategy's scope),
        the trainer's env-step counter, advanced by `frames_per_step` in the
        graph after each step's update.
      frames_per_step: environment frames one element holds.
      max_steps: the number of rows of the returned extras, >= N (default
        N); the trainer passes its steps per call, so that a shorter last
        call reuses the trace.

    Returns:
      (metrics, extras): the metrics of the last of the N steps, not means
      (counters such as `skipped_updates` and the metaparameters then
      describe the state after the call, as after N calls of `step`);
      `extras` stacked over the steps, each leaf `[max_steps, ...]` (per
      replica), of which rows N and later are zeros.

    Raises:
      ValueError: num_steps < 1, or max_steps < num_steps.
      tf.errors.OutOfRangeError / DeadlineExceededError: when the iterator
        fails at step k; the k - 1 steps before it are made and counted
        (learner steps and env_steps), their metrics and extras are lost.
    """
    if num_steps < 1:
      raise ValueError(f"num_steps must be >= 1, got {num_steps}.")
    max_steps = num_steps if max_steps is None else max_steps
    if max_steps < num_steps:
      raise ValueError(f"max_steps={max_steps} is less than "
                       f"num_steps={num_steps}.")
    if env_steps is None:
      env_steps, frames_per_step = (), 0
    args = (iterator, tf.constant(num_steps, tf.int32), env_steps,
            frames_per_step, max_steps)
    if not (tf.executing_eagerly() and isinstance(iterator, tf.data.Iterator)):
      return self._iterator_steps_fn(*args)
    # As in `step`, the concrete function saves the host the tf.function's
    # per-call binding and lookup (host time per call before and after:
    # docs/PERFORMANCE.md, levers table). Distributed iterators keep the
    # tf.function path.
    key = (type(iterator), tuple(tf.nest.flatten(iterator.element_spec)),
           tuple((v.shape, v.dtype) for v in tf.nest.flatten(env_steps)),
           frames_per_step, max_steps)
    return self._traced_iterator_steps.get(
        key, lambda: self._iterator_steps_fn.get_concrete_function(*args))(
            *args)

  def metagradient(
      self, inner_batch: Union[types.Trajectory, List[types.Trajectory]],
      outer_batch: types.Trajectory) -> Dict[str, tf.Tensor]:
    """d L_out / d eta keyed by metaparameter name; changes no state.

    Raises:
      TypeError, ValueError: a batch is not a trajectory this learner can
        use (see `trajectory_checks`).
    """
    self._check_inner_outer(inner_batch, outer_batch)
    result = self._metagradient(self._meta_variables(), inner_batch,
                                outer_batch)
    return dict(result.meta_grads)

  def outer_loss_after_inner_update(
      self, inner_batch: Union[types.Trajectory, List[types.Trajectory]],
      outer_batch: types.Trajectory,
      meta_params: Optional[Dict[str, tf.Tensor]] = None) -> tf.Tensor:
    """L_out after the M inner steps taken with `meta_params`; no state change.

    Args:
      inner_batch: a trajectory, or a list of M trajectories when M > 1.
      outer_batch: the outer-loss trajectory.
      meta_params: dict name -> tensor (default: the current ones).

    Raises:
      TypeError, ValueError: a batch is not a trajectory this learner can
        use (see `trajectory_checks`).
    """
    self._check_inner_outer(inner_batch, outer_batch)
    current = self.meta_params()
    meta = current if meta_params is None else meta_params
    params = [tf.convert_to_tensor(p)
              for p in self.network.trainable_variables]
    return self.engine.outer_loss_at(
        self._inner_loss, self._outer_loss_fn(params, inner_batch), params,
        _read(self.opt_state), meta, current, inner_batch, outer_batch,
        self.learning_rate())

  # -------------------------------------------------------------- internals
  def _check_inner_outer(self, inner_batch, outer_batch):
    trajectory_checks.check_batches(inner_batch, self.network, "inner_batch")
    trajectory_checks.check_trajectory(outer_batch, self.network,
                                       "outer_batch")

  def _outer_loss_fn(self, params, inner_batch):
    return lambda new, batch, reference: self._outer_loss(
        new, params, batch, inner_batch, reference)

  def _metagradient(self, meta, inner_batch, outer_batch):
    params = [tf.convert_to_tensor(p)
              for p in self.network.trainable_variables]
    return self.engine.metagradient(
        self._inner_loss, self._outer_loss_fn(params, inner_batch), params,
        _read(self.opt_state), meta, inner_batch, outer_batch,
        self.learning_rate())

  def _cross_replica_step(self, batch):
    packed = self.strategy.run(self._replica_fn, args=(batch,))
    return self._reduce_metrics(packed)

  def _reduce_metrics(self, packed):
    """The metrics dict from the replicas' packed vectors: one reduction."""
    return self._packing.unpack(
        self.strategy.reduce(tf.distribute.ReduceOp.SUM, packed, axis=None))

  def _packed_step(self, batch):
    return self._packing.pack(self._replica_step(batch),
                              self.strategy.num_replicas_in_sync)

  def _recorded_step(self, batch, extras, rows, index):
    """The replica function of `steps_from_iterator`: the update, and the
    element's extras written into row `index` of `rows`, in one program."""
    return self._replica_fn(batch), _write_row(rows, extras, index)

  def _iterator_step(self, iterator):
    batch, extras = next(iterator)
    return self._step_fn(batch), extras

  def _counted_step(self, batch, extras, rows, index, env_steps,
                    frames_per_step):
    packed, rows = self.strategy.run(self._recorded_step,
                                     args=(batch, extras, rows, index))
    if frames_per_step:
      # The metrics are computed after the update, so the frames are
      # counted only for a step that was made.
      with tf.control_dependencies(
          self.strategy.experimental_local_results(packed)):
        env_steps.assign_add(tf.constant(frames_per_step, env_steps.dtype))
    return packed, rows

  def _iterator_steps(self, iterator, num_steps, env_steps, frames_per_step,
                      max_steps):
    # The first step is taken before the loop: its outputs give the loop
    # variables their structure, shapes and dtypes. Its element gives the
    # extras' rows theirs: [max_steps, ...], static where the element's
    # shapes are, which a TPU program needs (num_steps is a runtime value).
    batch, extras = next(iterator)
    local = tf.nest.map_structure(
        lambda x: self.strategy.experimental_local_results(x)[0], extras)
    rows = self.strategy.experimental_distribute_values_from_function(
        lambda _: tf.nest.map_structure(
            lambda x: _zero_rows(x, max_steps), local))
    packed, rows = self._counted_step_fn(batch, extras, rows, tf.constant(0),
                                         env_steps, frames_per_step)

    def body(index, packed, rows):
      del packed
      batch, extras = next(iterator)
      packed, rows = self._counted_step_fn(batch, extras, rows, index,
                                           env_steps, frames_per_step)
      return index + 1, packed, rows

    _, packed, rows = tf.while_loop(
        lambda index, *_: index < num_steps, body,
        (tf.constant(1), packed, rows))
    return self._reduce_metrics(packed), rows

  def _replica_step(self, batch):
    passes = self._passes(batch)
    if len(passes) != self.updates_per_batch:
      raise ValueError(
          f"{type(self).__name__} made {len(passes)} (inner, outer) pairs of "
          f"a batch, expected updates_per_batch={self.updates_per_batch}.")
    for inner_batch, outer_batch in passes:
      # Each update reads the variables the previous one assigned (the
      # reads follow the assignments in program order inside tf.function).
      metrics = self._update(inner_batch, outer_batch)
    return metrics

  def _update(self, inner_batch, outer_batch):
    """One update of theta (and eta) from one (inner, outer) pair; assigns
    the variables and counters and returns the metrics."""
    meta_vars = self._meta_variables()
    variables = list(self.network.trainable_variables)
    lr = self.learning_rate()
    metrics = {"learning_rate": tf.cast(lr, tf.float32)}
    if meta_vars:
      result = self._metagradient(meta_vars, inner_batch, outer_batch)
      inner, finite = result.inner, result.finite
      flat_meta = tf.nest.flatten(meta_vars)
      meta_grads = tf.nest.flatten(result.meta_grads)
      meta_norm = tf.linalg.global_norm(meta_grads)
      if self.config.meta_max_grad_norm is not None:
        meta_grads, _ = tf.clip_by_global_norm(
            meta_grads, self.config.meta_max_grad_norm, use_norm=meta_norm)
      new_meta, new_meta_state = self.meta_optimizer.update(
          meta_grads, _read(self.meta_opt_state),
          [tf.convert_to_tensor(v) for v in flat_meta],
          tf.constant(self.config.meta_learning_rate, self.dtype))
      metrics["outer_loss"] = result.outer_loss
      metrics["meta_grad_norm"] = meta_norm
      for k, v in result.outer_logs.items():
        metrics["outer/" + k] = v
    else:
      inner = self.engine.inner_loop(
          self._inner_loss, variables, _read(self.opt_state), {}, inner_batch,
          lr)
      finite = inner.finite
    metrics["inner_loss"] = tf.add_n(inner.losses) / len(inner.losses)
    metrics["grad_norm"] = tf.add_n(inner.grad_norms) / len(inner.grad_norms)
    for k, v in inner.logs[-1].items():
      metrics[k] = v

    def kept(news, olds):
      """The new values, or the old ones when the step was not finite."""
      return [tf.where(finite, tf.cast(n, o.dtype), tf.convert_to_tensor(o))
              for n, o in zip(news, olds)]

    flat_state = tf.nest.flatten(self.opt_state)
    targets = variables + flat_state
    values = (kept(inner.params, variables)
              + kept(tf.nest.flatten(inner.opt_state), flat_state))
    if meta_vars:
      flat_meta_state = tf.nest.flatten(self.meta_opt_state)
      targets += flat_meta + flat_meta_state
      values += (kept(new_meta, flat_meta)
                 + kept(tf.nest.flatten(new_meta_state), flat_meta_state))
    replicas.assign_from_replicas(targets, values)
    # The step counter must wait for the update: nothing else ties it to the
    # batch, and once the step is inlined into `step_from_iterator`'s graph
    # it would otherwise count a step whose get_next failed.
    with tf.control_dependencies([finite]):
      counters = [self.learner_steps + 1,
                  self.skipped_updates + tf.cast(tf.logical_not(finite),
                                                 tf.int64)]
    replicas.assign_from_replicas(
        [self.learner_steps, self.skipped_updates], counters)
    for k, v in self._meta_metrics(self._meta_variables()).items():
      _summarise("meta/" + k, v, metrics)
    metrics["skipped_updates"] = self.skipped_updates
    return {k: tf.cast(v, tf.float32) for k, v in metrics.items()}
