"""n independent heads on one shared torso output (STACX, Zahavy et al. 2020).

STACX (section 3.2, supplement Algorithm 2) shares the torso and gives each of
n heads (n = 3) its own policy/value MLPs and metaparameters. Head 0 is the
one that acts and the only one in the outer loss (the paper's "head 1"); the
others are auxiliary and are trained by the inner loss only.
"""

import json
from typing import Any, Dict, Optional, Sequence, Union

import tensorflow as tf

from tf_metagrad.networks import params

_register = tf.keras.utils.register_keras_serializable(package='tf_metagrad')


@_register
class MultiHead(params.ParamLayer):
  """Stacks the outputs of `num_heads` fresh copies of a head.

  Args:
    head: a prototype head layer (e.g. `PolicyValueHead(num_actions)`) or its
      `tf.keras.layers.serialize` dict. Only its configuration is used: the
      copies are built from it with independent weights and take this
      layer's dtype policy.
    num_heads: n (STACX: 3).
    **kwargs: Keras layer arguments.

  Call returns:
    The head's output structure with every tensor stacked on a new leading
    axis of size n, e.g. for `PolicyValueHead` (logits `[n, ..., A]`,
    value `[n, ...]`). Index 0 is the acting head.
  """

  def __init__(self, head: Union[tf.keras.layers.Layer, Dict[str, Any]],
               num_heads: int = 3, **kwargs: Any) -> None:
    super().__init__(**kwargs)
    if int(num_heads) < 1:
      raise ValueError(f'num_heads must be >= 1, got {num_heads}.')
    self.num_heads = int(num_heads)
    if isinstance(head, tf.keras.layers.Layer):
      head = tf.keras.layers.serialize(head)
    elif not isinstance(head, dict):
      raise TypeError(f'`head` must be a Keras layer or its serialized dict, '
                      f'got {type(head).__name__}.')
    # Kept as JSON so Keras does not wrap it in a tracked DictWrapper.
    self._head_json = json.dumps(head)
    self.heads = []
    for i in range(self.num_heads):
      config = json.loads(self._head_json)
      config['config']['name'] = f'head_{i}'
      config['config']['dtype'] = self.dtype_policy.name
      self.heads.append(tf.keras.layers.deserialize(config))

  def build(self, input_shape: Union[tf.TensorShape,
                                     Sequence[Optional[int]]]) -> None:
    for head in self.heads:
      params.build_sublayer(head, input_shape)
    super().build(input_shape)

  def call(self, inputs: tf.Tensor) -> Any:
    outputs = [head(inputs) for head in self.heads]
    return tf.nest.map_structure(lambda *xs: tf.stack(xs), *outputs)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(head=json.loads(self._head_json),
                  num_heads=self.num_heads)
    return config
