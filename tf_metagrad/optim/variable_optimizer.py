"""Applies a pure optimizer's `update` to `tf.Variable`s.

For code that trains variables with these optimizers outside a meta-learner
(the learners keep their optimizer state as variables themselves and assign
the very tensors the meta-gradient engine produced). It runs exactly the same
`update` code as the differentiable inner loop and only adds variable storage
for the state and the (replica-aware) assignment.
"""

from typing import Any, List, Optional, Sequence, Union

import tensorflow as tf

from tf_metagrad.meta import replicas
from tf_metagrad.optim import optimizers


class VariableOptimizer(tf.Module):
  """Keeps an optimizer's state in variables and assigns its updates.

  Create it (or call `build`) under the same distribution strategy scope as
  the variables it updates. `apply` works eagerly, inside `tf.function`, in
  the cross-replica context and inside `strategy.run`; in a replica context
  the values must already be identical on every replica (e.g. computed from
  all-reduced gradients), and each device's copy takes its own replica's
  value.

  Args:
    optimizer: a pure optimizer (`SGD`, `RMSProp`, `Adam`).
    variables: if given, the state variables are created now for these
      (otherwise on the first `apply`, which then must run outside a
      `tf.function` or on its first trace).
    name: module name.
  """

  def __init__(self, optimizer: Union[optimizers.SGD, optimizers.RMSProp,
                                      optimizers.Adam],
               variables: Optional[Sequence[tf.Variable]] =
               None, name: Optional[str] = None) -> None:
    super().__init__(name=name)
    self.optimizer = optimizer
    self._state = None
    self._shapes = None
    if variables is not None:
      self.build(variables)

  def build(self, variables: Sequence[tf.Variable]) -> None:
    """Creates the state variables from `optimizer.init(variables)`."""
    variables = list(variables)
    with tf.init_scope():
      initial = self.optimizer.init(variables)
      self._state = tf.nest.map_structure(
          lambda t: tf.Variable(t, trainable=False, name='opt_state'), initial)
    self._shapes = [v.shape for v in variables]

  @property
  def state_variables(self) -> List[tf.Variable]:
    """Flat list of the state variables (for checkpoints and inspection)."""
    if self._state is None:
      return []
    return tf.nest.flatten(self._state)

  @property
  def state(self) -> List[Any]:
    """The state nest (variables), aligned with the updated variables."""
    return self._state

  def apply(self, grads: Sequence[Optional[tf.Tensor]],
            variables: Sequence[tf.Variable],
            learning_rate: Union[float, tf.Tensor]) -> None:
    """Computes `optimizer.update` and assigns the results.

    Args:
      grads: gradients aligned with `variables` (None: leave it unchanged).
      variables: the variables to update (the same list every call).
      learning_rate: scalar learning rate.

    Raises:
      ValueError: if `variables` do not match the ones the state was built
        for.
    """
    variables = list(variables)
    if self._state is None:
      self.build(variables)
    shapes = [v.shape for v in variables]
    if len(shapes) != len(self._shapes) or any(
        not a.is_compatible_with(b) for a, b in zip(shapes, self._shapes)):
      raise ValueError(
          f'VariableOptimizer state was built for {len(self._shapes)} '
          f'variables with shapes {[s.as_list() for s in self._shapes]}, got '
          f'{len(shapes)} with shapes {[s.as_list() for s in shapes]}.')
    state = tf.nest.map_structure(tf.convert_to_tensor, self._state)
    new_params, new_state = self.optimizer.update(
        grads, state, variables, learning_rate)
    targets = variables + tf.nest.flatten(self._state)
    values = new_params + tf.nest.flatten(new_state)
    replicas.assign_from_replicas(targets, values)
