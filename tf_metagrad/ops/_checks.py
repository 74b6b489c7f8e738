"""Argument conversion and trace-time shape validation shared by the ops.

Every op validates the shapes it can see when it is traced, so a wrong layout
fails at the call site with a message naming the argument instead of deep
inside a broadcast. Dimensions unknown at trace time are not checked.
"""

from typing import List, Optional, Sequence, Tuple

import tensorflow as tf
from tensorflow.types.experimental import TensorLike

# (label, static size or None) for each dimension of an expected shape.
Dims = Sequence[Tuple[str, Optional[int]]]


def float_tensor(value: TensorLike, name: str,
                 dtype: Optional[tf.DType] = None) -> tf.Tensor:
  """Converts `value` to a floating-point tensor.

  Args:
    value: a tensor, variable, numpy array or Python number.
    name: the argument name used in error messages.
    dtype: required dtype. Python numbers and numpy arrays are cast to it;
      tensors and variables must already have it (casting them silently would
      hide a float32/float64 mix-up).

  Returns:
    A `tf.Tensor` (reading a variable keeps it differentiable).

  Raises:
    TypeError: if `value` is not floating point or has the wrong dtype.
  """
  if dtype is not None and (tf.is_tensor(value) or
                            isinstance(value, tf.Variable)):
    if value.dtype.base_dtype != dtype:
      raise TypeError(f'`{name}` must have dtype {dtype.name}, got '
                      f'{value.dtype.base_dtype.name}.')
  tensor = tf.convert_to_tensor(value, dtype=dtype)
  if not tensor.dtype.is_floating:
    raise TypeError(f'`{name}` must be a floating-point tensor, got dtype '
                    f'{tensor.dtype.name}.')
  return tensor


def format_dims(dims: Dims) -> str:
  labels = ', '.join(label for label, _ in dims)
  sizes = ', '.join('?' if size is None else str(size) for _, size in dims)
  return f'[{labels}] = [{sizes}]' if dims else '[] (a scalar)'


def shape_str(shape: tf.TensorShape) -> str:
  if shape.rank is None:
    return 'unknown rank'
  return '[' + ', '.join('?' if d is None else str(d)
                         for d in shape.as_list()) + ']'


def matches(shape: tf.TensorShape, dims: Dims,
            broadcast: bool = False) -> bool:
  """Whether a static shape fits `dims`; size 1 also fits if `broadcast`."""
  if shape.rank != len(dims):
    return False
  for actual, (_, expected) in zip(shape.as_list(), dims):
    if actual is None or expected is None or actual == expected:
      continue
    if broadcast and actual == 1:
      continue
    return False
  return True


def require_known_rank(tensor: tf.Tensor, name: str) -> None:
  if tensor.shape.rank is None:
    raise ValueError(f'`{name}` must have a rank known at trace time, got a '
                     'tensor of unknown rank.')


def check_shape(tensor: tf.Tensor, name: str, dims: Dims) -> None:
  """Raises ValueError unless the static shape of `tensor` fits `dims`."""
  require_known_rank(tensor, name)
  if not matches(tensor.shape, dims):
    raise ValueError(f'`{name}` must have shape {format_dims(dims)}, got '
                     f'{shape_str(tensor.shape)}.')


def static_dim(*tensors_and_axes: Tuple[tf.Tensor, int]) -> Optional[int]:
  """First statically known size among (tensor, axis) pairs, else None."""
  for tensor, axis in tensors_and_axes:
    shape = tensor.shape
    if shape.rank is not None and shape.rank > axis:
      size = tf.compat.dimension_value(shape[axis])
      if size is not None:
        return size
  return None


class TimeMajorLayout:
  """Shape contract of a time-major op with an optional trailing quantile axis.

  Per-step quantities are `[T, B]`, or `[T, B, N]` when the op runs on N
  quantiles. In the quantile layout, `[T, B]` arguments are broadcast over N
  by appending a size-1 axis.
  """

  def __init__(self, dtype: tf.DType, num_steps: Optional[int],
               batch_size: Optional[int], num_quantiles: Optional[int],
               quantile: bool) -> None:
    self.dtype = dtype
    self.quantile = quantile
    self._t = ('T', num_steps)
    self._b = ('B', batch_size)
    self._n = ('N', num_quantiles)

  @classmethod
  def from_values(cls, values: tf.Tensor,
                  name: str = 'values') -> 'TimeMajorLayout':
    """Layout read off `[T, B]` or `[T, B, N]` values."""
    require_known_rank(values, name)
    rank = values.shape.rank
    if rank not in (2, 3):
      raise ValueError(f'`{name}` must have shape [T, B] or [T, B, N], got '
                       f'{shape_str(values.shape)}.')
    dims = values.shape.as_list()
    return cls(values.dtype, dims[0], dims[1], dims[2] if rank == 3 else None,
               quantile=rank == 3)

  @classmethod
  def from_bootstrap(cls, bootstrap_value: tf.Tensor,
                     num_steps: Optional[int],
                     name: str = 'bootstrap_value') -> 'TimeMajorLayout':
    """Layout read off a `[B]` or `[B, N]` bootstrap value."""
    require_known_rank(bootstrap_value, name)
    rank = bootstrap_value.shape.rank
    if rank not in (1, 2):
      raise ValueError(f'`{name}` must have shape [B] or [B, N], got '
                       f'{shape_str(bootstrap_value.shape)}.')
    dims = bootstrap_value.shape.as_list()
    return cls(bootstrap_value.dtype, num_steps, dims[0],
               dims[1] if rank == 2 else None, quantile=rank == 2)

  @property
  def step_dims(self) -> List[Tuple[str, Optional[int]]]:
    return [self._t, self._b] + ([self._n] if self.quantile else [])

  @property
  def bootstrap_dims(self) -> List[Tuple[str, Optional[int]]]:
    return self.step_dims[1:]

  def bootstrap(self, value: TensorLike, name: str) -> tf.Tensor:
    tensor = float_tensor(value, name, self.dtype)
    check_shape(tensor, name, self.bootstrap_dims)
    return tensor

  def per_step(self, value: TensorLike, name: str,
               quantile_axis: bool = True) -> tf.Tensor:
    """A `[T, B]` (or, if `quantile_axis`, `[T, B, N]`) data tensor.

    `[T, B, 1]` is accepted for `[T, B, N]`. Returns the tensor with the rank
    of the op's output, i.e. `[T, B, 1]` for a `[T, B]` input in the quantile
    layout.
    """
    tensor = float_tensor(value, name, self.dtype)
    require_known_rank(tensor, name)
    allowed = [[self._t, self._b]]
    if self.quantile and quantile_axis:
      allowed.append(self.step_dims)
    shape = tensor.shape
    if shape.rank == 3 and tf.compat.dimension_value(shape[2]) == 1:
      shape = shape[:2].concatenate([None])  # broadcast over the N quantiles
    if not any(matches(shape, dims) for dims in allowed):
      expected = ' or '.join(format_dims(dims) for dims in allowed)
      raise ValueError(f'`{name}` must have shape {expected}, got '
                       f'{shape_str(tensor.shape)}.')
    return self._expand_step(tensor)

  def coefficient(self, value: TensorLike, name: str) -> tf.Tensor:
    """A scalar or broadcastable per-step coefficient such as `lambda_`.

    Accepted: a scalar, anything broadcastable to `[T, B]` of rank 2, and in
    the quantile layout also `[N]` or rank 3 broadcastable to `[T, B, N]`.
    """
    tensor = float_tensor(value, name, self.dtype)
    require_known_rank(tensor, name)
    allowed = [[], [self._t, self._b]]
    if self.quantile:
      allowed += [[self._n], self.step_dims]
    if not any(matches(tensor.shape, dims, broadcast=True) for dims in allowed):
      expected = ', '.join(format_dims(dims) for dims in allowed)
      raise ValueError(f'`{name}` must be broadcastable to one of {expected}; '
                       f'got {shape_str(tensor.shape)}.')
    return self._expand_step(tensor)

  def _expand_step(self, tensor):
    if self.quantile and tensor.shape.rank == 2:
      return tensor[..., tf.newaxis]
    return tensor
