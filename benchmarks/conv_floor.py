r"""The convolutions an exact STAC step cannot avoid, against IMPALA's step.

Usage:
  python -m benchmarks.conv_floor [--batch_size=8] [--unroll_length=20]

Why: issue #16 asks for a STAC/IMPALA step ratio <= 2.0 on the IMPALA ResNet
with the exact meta-gradient. On the (T + 1) x B frames of a batch, per conv
layer l of the torso (input x_l, kernel W_l, output cotangent dy_l):
- IMPALA's step runs the forward conv(x_l, W_l), the filter gradient
  dW_l = x_l^T * dy_l and, except for the first layer (its input is data),
  the input gradient dx_l = dy_l * W_l^T: 15 + 15 + 14 = 44 on the ResNet.
- STAC's exact step (Zahavy et al. 2020, Algorithm 1) runs all of that
  twice, at theta for the inner loss and at theta' for the outer loss, and
  the meta-gradient's second-order term: with w the outer gradient mapped
  back through the (elementwise) optimizer Jacobian, d/d eta <w, g(theta,
  eta)> needs the product of the torso's Jacobian with w, per layer
  conv(x_l, w_W) + conv(u_l, W_l) (u_l the tangent of x_l; the first layer
  has only the first term). Reverse over reverse, as the learner computes
  it, runs the same pairs as the adjoints of the two gradients. That is
  2 x 44 + 29 = 117, with 2.66 times IMPALA's convolution FLOPs.
This times those convolutions alone: each set as independent ops in one
tf.function (the most favourable schedule, no data dependencies), on random
operands of the layers' shapes taken from the learner's own torso, beside
IMPALA's whole learner step on a random batch of the same shape, in one
process, taking turns. `stac_convs / impala_step` is then a floor under the
exact STAC/IMPALA step ratio on this machine, at the thread settings given:
the rest of STAC's step can only add to it. (With fewer intra-op threads
IMPALA's chain of convolutions uses the cores less fully than the
independent set does, which lowers this floor without making STAC's step
any faster; the CPU time per call of both is printed too.)

It also times the second-order pairs summed against each pair merged into
one convolution over the channel-concatenated input [x_l, u_l] with the
kernel [w_W; W_l] (same FLOPs, half the kernels, twice the input channels):
the one way STAC's convolutions could run more efficiently than IMPALA's.
It first checks that the merged and summed pairs agree.

The last line printed is machine-readable:
  impala_step_ms=<median> impala_convs_ms=<median> stac_convs_ms=<median>
  pairs_ms=<median> merged_ms=<median> floor_ratio=<stac_convs / impala_step>
  merged_over_pairs=<merged / pairs>
"""

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from benchmarks import common
from tf_metagrad.networks import primitives

_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Trajectories per batch.",
                                   lower_bound=1)
_UNROLL_LENGTH = flags.DEFINE_integer("unroll_length", 20,
                                      "Time steps per trajectory.",
                                      lower_bound=1)
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls of each function.",
                                lower_bound=1)
_TINY = flags.DEFINE_boolean(
    "tiny", False, "A one-section ResNet of 4 channels (for smoke tests).")
_THREADS = common.define_thread_flags()


def conv_layer_shapes(torso, frame_shape):
  """(input shape [H, W, C_in], kernel shape) of each conv of a built
  `AtariResNetTorso`, in the order it applies them."""
  height, width = frame_shape[:2]
  shapes = []
  for section_conv, blocks in torso._sections():  # pylint: disable=protected-access
    convs = [section_conv] + [conv for block in blocks for conv in block]
    for i, conv in enumerate(convs):
      shapes.append(((height, width, conv.kernel.shape[2]),
                     tuple(conv.kernel.shape)))
      if i == 0:  # The section's max-pool (3x3, stride 2) follows its conv.
        height, width = (primitives.conv_output_size(d, 3, 2, "SAME")
                         for d in (height, width))
  return shapes


class _Layer:
  """Random operands of one conv layer's first-order convolutions."""

  def __init__(self, rng, frames, input_shape, kernel_shape, first):
    normal = lambda shape: tf.constant(rng.standard_normal(shape), tf.float32)
    self.first = first
    self.x = normal((frames, *input_shape))
    self.kernel = normal(kernel_shape)
    self.dy = normal((frames, *input_shape[:2], kernel_shape[-1]))

  def first_order(self):
    """The forward, the filter gradient and the input gradient (not for the
    first layer): what one forward and backward pass convolve."""
    outputs = [
        tf.nn.conv2d(self.x, self.kernel, 1, "SAME"),
        tf.raw_ops.Conv2DBackpropFilter(
            input=self.x, filter_sizes=self.kernel.shape,
            out_backprop=self.dy, strides=[1, 1, 1, 1], padding="SAME")]
    if not self.first:
      outputs.append(tf.raw_ops.Conv2DBackpropInput(
          input_sizes=self.x.shape, filter=self.kernel, out_backprop=self.dy,
          strides=[1, 1, 1, 1], padding="SAME"))
    return outputs


class _SecondOrder:
  """Random operands of one layer's second-order pair."""

  def __init__(self, layer, rng):
    self.layer = layer
    self.u = tf.constant(rng.standard_normal(layer.x.shape), tf.float32)
    self.w = tf.constant(rng.standard_normal(layer.kernel.shape), tf.float32)

  def pair(self):
    out = tf.nn.conv2d(self.layer.x, self.w, 1, "SAME")
    if self.layer.first:
      return out
    return out + tf.nn.conv2d(self.u, self.layer.kernel, 1, "SAME")

  def merged(self):
    if self.layer.first:
      return self.pair()
    return tf.nn.conv2d(tf.concat([self.layer.x, self.u], -1),
                        tf.concat([self.w, self.layer.kernel], 2), 1, "SAME")


def conv_sets(shapes, frames, seed=0):
  """tf.functions running IMPALA's and STAC's convolutions, and the
  second-order pairs summed and merged, each as independent ops."""
  rng = np.random.default_rng(seed)
  make = lambda: [_Layer(rng, frames, input_shape, kernel_shape, i == 0)
                  for i, (input_shape, kernel_shape) in enumerate(shapes)]
  # Two passes of STAC need operands of their own: identical ops on the
  # same inputs would be merged by grappler's common-subexpression pass.
  at_theta, at_theta_prime = make(), make()
  second = [_SecondOrder(layer, rng) for layer in at_theta]
  functions = dict(
      impala_convs=lambda: [y for l in at_theta for y in l.first_order()],
      stac_convs=lambda: ([y for l in at_theta for y in l.first_order()] +
                          [y for l in at_theta_prime for y in l.first_order()]
                          + [s.pair() for s in second]),
      pairs=lambda: [s.pair() for s in second],
      merged=lambda: [s.merged() for s in second])
  return {name: tf.function(fn, autograph=False)
          for name, fn in functions.items()}


def count_convs(fn):
  """Convolution ops (forward and both gradients) in `fn`'s graph."""
  graph = fn.get_concrete_function().graph
  return sum(op.type.startswith("Conv2D") for op in graph.get_operations())


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}.")
  threads = common.configure_threads(_THREADS)
  batch_size, unroll = _BATCH_SIZE.value, _UNROLL_LENGTH.value
  frames = (unroll + 1) * batch_size
  shape, dtype, num_actions, _ = common.NETWORKS["resnet"]
  learner = common.build_learner("impala", "resnet", False, 0,
                                 tiny=_TINY.value, head_hidden_sizes=())
  batch = common.random_trajectory(np.random.default_rng(0), unroll,
                                   batch_size, shape, dtype, num_actions)
  learner.step(batch)  # Builds and traces; the timed calls skip the checks.
  shapes = conv_layer_shapes(learner.network.torso, shape)
  sets = conv_sets(shapes, frames)
  counts = {name: count_convs(sets[name])
            for name in ("impala_convs", "stac_convs")}
  print(f"network=resnet channels={learner.network.torso.channels} "
        f"head_hidden_sizes=() layers={len(shapes)} frames={frames} "
        f"repeats={_REPEATS.value} {threads}", flush=True)
  print(f"convolutions: impala {counts['impala_convs']} stac "
        f"{counts['stac_convs']}", flush=True)
  worst = max(
      float(tf.reduce_max(tf.abs(p - m)) / tf.reduce_max(tf.abs(p)))
      for p, m in zip(sets["pairs"](), sets["merged"]()))
  print(f"merged vs pairs: largest difference {worst:.2e} of the largest "
        f"output", flush=True)
  calls = {"impala_step": lambda: learner.step(batch, check=False)
           ["inner_loss"]}
  calls.update({name: (lambda fn=fn: fn()[-1]) for name, fn in sets.items()})
  times = common.interleaved_times(calls, warmup=1, repeats=_REPEATS.value)
  ms = {name: common.summary_ms(t)[0] for name, t in times.items()}
  cpu = {name: common.cpu_ms_per_call(calls[name], _REPEATS.value)
         for name in ("impala_step", "stac_convs")}
  print(f"cpu per call: impala_step {cpu['impala_step']:.1f} ms, stac_convs "
        f"{cpu['stac_convs']:.1f} ms, ratio "
        f"{cpu['stac_convs'] / cpu['impala_step']:.3f}", flush=True)
  print(" ".join(f"{name}_ms={value:.3f}" for name, value in ms.items()) +
        f" floor_ratio={ms['stac_convs'] / ms['impala_step']:.3f} "
        f"merged_over_pairs={ms['merged'] / ms['pairs']:.3f}", flush=True)


if __name__ == "__main__":
  app.run(main)
