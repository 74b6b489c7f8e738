"""DrMG hyperparameters and ablation switches (Yin et al. (2023) sections 4, 5.3).

Choices where the paper is silent (its appendix is not in Yin et al. (2023)):
- `num_quantiles` N = 16 (so |eta| = 3N + 3 = 51);
- the outer loss uses the same return form as the inner one (lambda-return or
  n-step) with the reference values eta' (gamma 0.995, lambda 1, alpha 1,
  w_pi 1, w_H 0.01, w_Z 0.25), and no KL term (g_kl = 0);
- the policy advantage is eq. 11, mean_q (Gamma_q - Z_q) min(c-bar, IS).
Names: the loss weights w_Z, w_pi, w_H are stored as g_v, g_p, g_e.

Held-out outer batch with swapped roles (the default, `outer_batch="split"`).
Yin et al. (2023) section 3 (eq. 5) and section 4 (eq. 12-14) evaluate the outer loss
L_out(tau', theta', eta') on a batch tau' other than the batch tau of the
inner update, and section 5.2 samples two batches of the same size and
forms the two (inner, outer) combinations of them, running the meta-gradient
update loop twice. Our reading: each learner batch of trajectories is cut
into two halves, A (the first floor(size/2)) and B (the rest), and a
learner step makes two full updates in turn, each moving theta by
eq. 12 and eta by eq. 14: first inner on A and outer on B, then, from the
theta, optimizer state and eta the first one produced, inner on B and outer
on A. The paper does not say whether the second loop starts from the
first's result; running them one after the other is the reading in which
both loops are real updates. Both are counted: `updates_per_batch()` is 2,
`learner_steps` advances by 2 per batch, the step's metrics are the second
update's, and each batch's frames are counted once as environment steps.
`outer_batch="same"` (inner and outer loss on the whole batch, one update)
stays available. Without metaparameters (variant "qr") there is no outer
loss and the whole batch feeds one update.
"""

import dataclasses
from typing import Dict, Tuple

from tf_metagrad.agents import config as config_lib

VARIANTS = ("full", "eta1", "qr")


@dataclasses.dataclass
class DrmgConfig(config_lib.AgentConfig):
  """DrMG: eta = {lambda, gamma, w_Z as N-vectors; alpha, w_pi, w_H}.

  Attributes:
    variant: "full" (eta0 + eta1), "eta1" (only the loss weights w_H, w_pi,
      w_Z are meta-learned; gamma, lambda, alpha fixed), "qr" (no
      meta-learning: the non-adaptive distributional return).
    n_step: None for the distributional lambda-return (eq. 9-10); 3 or 5
      (any n >= 1) for the "DrMG + n-step" ablation, where lambda and alpha
      no longer enter the return and are not meta-learned.
    scalar_eta: one gamma / lambda / w_Z shared by all quantiles (eta-bar).
    g_kl: optional KL(pi_theta' || pi_theta) weight in the outer loss.
    distributional_advantage: "drmg" (eq. 11) or "vtrace".
    outer_batch: "split" (default: the two halves of the batch, each once
      inner and once outer, in two updates; see the module docstring) or
      "same" (one update, both losses on the whole batch).
  """

  distributional: bool = True
  variant: str = "full"
  scalar_eta: bool = False
  g_kl: float = 0.0
  distributional_advantage: str = "drmg"
  outer_batch: str = "split"

  def __post_init__(self):
    super().__post_init__()
    if not self.distributional:
      raise ValueError("DrMG needs distributional=True (a quantile head).")
    if self.variant not in VARIANTS:
      raise ValueError(
          f"variant must be one of {VARIANTS}, got {self.variant!r}.")
    if self.g_kl < 0:
      raise ValueError(f"g_kl must be >= 0, got {self.g_kl}.")
    if self.distributional_advantage not in ("drmg", "vtrace"):
      raise ValueError(
          "distributional_advantage must be 'drmg' or 'vtrace', got "
          f"{self.distributional_advantage!r}.")

  def updates_per_batch(self) -> int:
    """2 with the swapped halves (Yin et al. (2023) section 5.2), else 1."""
    swaps = self.outer_batch == "split" and self.variant != "qr"
    return 2 if swaps else 1

  def meta_shapes(self) -> Dict[str, Tuple[int, ...]]:
    """name -> shape of every meta-learned parameter for this variant."""
    vector = () if self.scalar_eta else (self.num_quantiles,)
    eta0 = {"gamma": vector}
    if self.n_step is None:
      eta0.update(lambda_=vector, alpha=())
    eta1 = {"g_v": vector, "g_p": (), "g_e": ()}
    if self.variant == "qr":
      return {}
    if self.variant == "eta1":
      return eta1
    return {**eta0, **eta1}
