r"""Would merging the meta-gradient's paired convolutions make them faster?

Usage:
  python -m benchmarks.conv_pairs [--frames=168] [--repeats=9]

The exact STAC step on the IMPALA ResNet runs 117 convolutions against
IMPALA's 44 (docs/PERFORMANCE.md). 29 of them are the second-order pass,
which for each conv layer with input x and kernel W sums two convolutions of
the layer's shape, conv(x, u_W) + conv(u_x, W) (u: the cotangents of the
first-order pass; a forward-mode product through the torso has the same
pairs; the first layer has only conv(x, u_W), its input being data). The pair equals ONE convolution over the channel-concatenated input
[x, u_x] with the kernel [u_W; W] stacked along its input channels: the same
FLOPs, half the kernels, twice the input channels. If oneDNN ran the wider
convolution more efficiently, STAC's step would gain on IMPALA's, whose
convolutions cannot be merged this way.

For the 15 conv layers of `AtariResNetTorso` (channels 16, 32, 32 on 84x84x4
frames; `--frames` = (T + 1) x B, 168 for the benchmarks' B = 8, T = 20)
this times, in one process and taking turns, three tf.functions over random
tensors of the layers' shapes: each layer's single convolution, the
layer's pair summed, and the merged convolution. It first checks that
merged and summed pairs agree (float32 rounding only).
The last line printed is machine-readable:
  single_ms=<median> pairs_ms=<median> merged_ms=<median>
  merged_over_pairs=<ratio>
"""

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from benchmarks import common
from tf_metagrad.networks import primitives
from tf_metagrad.networks import torsos

_FRAMES = flags.DEFINE_integer(
    "frames", 168, "Frames per convolution: (T + 1) x B of a learner batch.",
    lower_bound=1)
_REPEATS = flags.DEFINE_integer("repeats", 9, "Timed calls of each function.",
                                lower_bound=1)
_THREADS = common.define_thread_flags()


def conv_layer_shapes(frame_shape=(84, 84, 4)):
  """(input shape [H, W, C_in], kernel shape) of each conv of the IMPALA
  ResNet torso, in the order the torso applies them."""
  torso = torsos.AtariResNetTorso()
  torso.build([None, *frame_shape])
  blocks = 2 * torso.blocks_per_section
  height, width = frame_shape[:2]
  shapes = []
  for s, section_conv in enumerate(torso.section_convs):
    convs = [section_conv] + torso.block_convs[blocks * s:blocks * (s + 1)]
    for i, conv in enumerate(convs):
      shapes.append(((height, width, conv.kernel.shape[2]),
                     tuple(conv.kernel.shape)))
      if i == 0:  # The section's max-pool (3x3, stride 2) follows its conv.
        height, width = (primitives.conv_output_size(d, 3, 2, "SAME")
                         for d in (height, width))
  return shapes


def conv_functions(frames: int, seed: int = 0):
  """The three tf.functions over random operands: single, pairs, merged."""
  rng = np.random.default_rng(seed)
  layers = []
  for input_shape, kernel_shape in conv_layer_shapes():
    normal = lambda shape: tf.constant(rng.standard_normal(shape), tf.float32)
    layers.append((normal((frames, *input_shape)),
                   normal((frames, *input_shape)), normal(kernel_shape),
                   normal(kernel_shape)))
  conv = lambda x, kernel: tf.nn.conv2d(x, kernel, 1, "SAME")

  @tf.function
  def single():
    return [conv(x, w) for x, _, w, _ in layers]

  @tf.function
  def pairs():
    return [conv(x, u_w) + conv(u_x, w) for x, u_x, w, u_w in layers]

  @tf.function
  def merged():
    return [conv(tf.concat([x, u_x], -1), tf.concat([u_w, w], 2))
            for x, u_x, w, u_w in layers]

  return single, pairs, merged


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}.")
  threads = common.configure_threads(_THREADS)
  single, pairs, merged = conv_functions(_FRAMES.value)
  print(f"layers={len(conv_layer_shapes())} frames={_FRAMES.value} "
        f"repeats={_REPEATS.value} {threads}", flush=True)
  worst = max(
      float(tf.reduce_max(tf.abs(p - m)) / tf.reduce_max(tf.abs(p)))
      for p, m in zip(pairs(), merged()))
  print(f"merged vs pairs: largest difference {worst:.2e} of the largest "
        f"output", flush=True)
  calls = {"single": lambda: single()[-1], "pairs": lambda: pairs()[-1],
           "merged": lambda: merged()[-1]}
  times = common.interleaved_times(calls, warmup=1, repeats=_REPEATS.value)
  medians = {name: common.summary_ms(t)[0] for name, t in times.items()}
  print(" ".join(f"{name}_ms={ms:.3f}" for name, ms in medians.items()) +
        f" merged_over_pairs={medians['merged'] / medians['pairs']:.3f}",
        flush=True)


if __name__ == "__main__":
  app.run(main)
