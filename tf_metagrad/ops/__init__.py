"""Pure TensorFlow maths for meta-gradient RL, time-major `[T, B, ...]`.

Every op works in float32 and float64, traces under
`tf.function(jit_compile=True)` and is differentiable twice; none of them
stops gradients.
"""

from tf_metagrad.ops import distributional
from tf_metagrad.ops import policy
from tf_metagrad.ops import returns
from tf_metagrad.ops import vtrace
