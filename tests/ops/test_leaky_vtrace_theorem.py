"""STAC's Theorem 1 for `ops.vtrace`, with exact expectations.

Zahavy et al. 2020, "A Self-Tuning Actor-Critic Algorithm", Theorem 1 (and
its restatement, Theorem 2 of the supplement, section 10): with
alpha_rho >= alpha_c and rho-bar >= c-bar, the leaky V-trace operator

  R V(x) = V(x) + E_mu[sum_t gamma^t (prod_{i<t} c_i) rho_t
                       (r_t + gamma V(x_{t+1}) - V(x_t)) | x_0 = x]

is a contraction in sup-norm with modulus at most
1 - (1 - gamma)(alpha_rho beta + 1 - alpha_rho), beta = min_x E_mu rho_0,
and its fixed point is the value of the policy

  pi_leaky(a|x) ∝ alpha_rho min(rho-bar mu(a|x), pi(a|x))
                  + (1 - alpha_rho) pi(a|x).

Here the operator is the n-step one our agents use (the supplement notes the
same holds for it): on a small random MDP, every n-step trajectory of the
behaviour policy mu from every state is enumerated with its probability, its
leaky V-trace target v_0 is computed by `ops.vtrace.from_importance_weights`,
and R V(x) is the probability-weighted sum over the trajectories from x. So
R is evaluated exactly (float64) with the library's own code; R is affine,
R V = M V + b, and M is read off by applying R to the unit vectors.

The checks: M is non-negative with row sums at most the theorem's modulus
(so R contracts); the value of pi_leaky, computed by linear algebra, is
mapped to itself by R and solves V = M V + b (so, by Banach's theorem, it
is where iterating R converges); iterating R from V = 0 shrinks the
distance to it by at least the modulus each time; and the values of the
target policy pi and of the V-trace policy pi_rho-bar (alpha = 1) are not
fixed points when alpha is not that end, so a wrong fixed point fails.

Error model: every quantity is a float64 sum of at most a few thousand
terms of size O(1/(1 - gamma)) = O(10), so rounding stays below
1e3 * 1e1 * 2^-53 ~ 1e-12; the tolerances (1e-9) leave three orders of
magnitude, and the distances to the wrong fixed points exceed 1e-2.
"""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from tf_metagrad.ops import vtrace

S, A, N = 3, 2, 3  # States, actions, steps per trajectory.
GAMMA = 0.9


def _mdp(seed):
  rng = np.random.default_rng(seed)
  transitions = rng.dirichlet(np.ones(S), size=(S, A))
  rewards = rng.normal(size=(S, A))
  # mu and pi far apart, so that truncation at rho-bar = 1 and 2 happens.
  mu = rng.dirichlet(np.ones(A), size=S)
  mu = 0.15 + 0.7 * mu
  mu /= mu.sum(-1, keepdims=True)
  pi = np.roll(mu, 1, axis=1) ** 3
  pi /= pi.sum(-1, keepdims=True)
  return transitions, rewards, mu, pi


def _trajectories(transitions, mu):
  """Every n-step trajectory under mu from every state, time-major."""
  states, actions, probs = [], [], []
  for start in range(S):
    for steps in itertools.product(range(A), range(S), repeat=N):
      path, taken, p = [start], [], 1.0
      for t in range(N):
        a, nxt = steps[2 * t], steps[2 * t + 1]
        p *= mu[path[-1], a] * transitions[path[-1], a, nxt]
        taken.append(a)
        path.append(nxt)
      states.append(path)
      actions.append(taken)
      probs.append(p)
  return (np.array(states).T, np.array(actions).T, np.array(probs))


class _LeakyOperator:
  """R V on all states at once, through `ops.vtrace`."""

  def __init__(self, transitions, rewards, mu, pi, rho_bar, alpha, alpha_c):
    self.states, actions, self.probs = _trajectories(transitions, mu)
    visited = self.states[:-1]
    self.log_rhos = tf.constant(np.log(pi[visited, actions])
                                - np.log(mu[visited, actions]))
    self.rewards = tf.constant(rewards[visited, actions])
    self.discounts = tf.constant(np.full(visited.shape, GAMMA))
    self.kwargs = dict(clip_rho_threshold=rho_bar, alpha=alpha,
                       alpha_c=alpha_c)
    self.start = self.states[0]

  def __call__(self, values):
    vs = vtrace.from_importance_weights(
        self.log_rhos, self.discounts, self.rewards,
        tf.constant(values[self.states[:-1]]),
        tf.constant(values[self.states[-1]]), **self.kwargs).vs[0].numpy()
    return np.array([np.sum((self.probs * vs)[self.start == s])
                     for s in range(S)])

  def affine(self):
    """(M, b) with R V = M V + b."""
    b = self(np.zeros(S))
    m = np.stack([self(np.eye(S)[i]) - b for i in range(S)], axis=1)
    return m, b


def _value(policy, transitions, rewards):
  p = np.einsum("sa,sat->st", policy, transitions)
  r = np.sum(policy * rewards, -1)
  return np.linalg.solve(np.eye(S) - GAMMA * p, r)


def _leaky_policy(mu, pi, rho_bar, alpha):
  weights = alpha * np.minimum(rho_bar * mu, pi) + (1 - alpha) * pi
  return weights / weights.sum(-1, keepdims=True)


CASES = [
    # (alpha_rho, alpha_c, rho_bar): V-trace, leaky, separate alpha_c < alpha,
    # importance sampling, and a rho-bar above c-bar = 1.
    (1.0, 1.0, 1.0), (0.5, 0.5, 1.0), (0.7, 0.3, 1.0), (0.0, 0.0, 1.0),
    (0.4, 0.4, 2.0),
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("alpha,alpha_c,rho_bar", CASES)
def test_leaky_vtrace_contracts_to_the_value_of_the_leaky_policy(
    seed, alpha, alpha_c, rho_bar):
  transitions, rewards, mu, pi = _mdp(seed)
  assert np.max(pi / mu) > 2.5  # Truncation bites at both rho-bars.
  operator = _LeakyOperator(transitions, rewards, mu, pi, rho_bar, alpha,
                            alpha_c)
  m, b = operator.affine()
  beta = np.min(np.sum(mu * np.minimum(rho_bar, pi / mu), -1))
  modulus = 1 - (1 - GAMMA) * (alpha * beta + 1 - alpha)
  assert modulus < 1
  assert np.all(m >= -1e-12), m
  assert np.max(np.sum(np.abs(m), 1)) <= modulus + 1e-12

  # The fixed point: the value of the leaky policy. R maps it to itself,
  # and it solves V = M V + b.
  expected = _value(_leaky_policy(mu, pi, rho_bar, alpha), transitions,
                    rewards)
  np.testing.assert_allclose(operator(expected), expected, rtol=0,
                             atol=1e-9)
  np.testing.assert_allclose(np.linalg.solve(np.eye(S) - m, b), expected,
                             rtol=0, atol=1e-9)
  # Iterates from V = 0 approach it at the theorem's rate (at least).
  values, distance = np.zeros(S), np.max(np.abs(expected))
  for _ in range(20):
    values = operator(values)
    new_distance = np.max(np.abs(values - expected))
    assert new_distance <= modulus * distance + 1e-12
    distance = new_distance
  # Not the value of another policy: pi's (what alpha = 0 gives) or the
  # V-trace policy's (alpha = 1), unless alpha is that end.
  for other_alpha in (0.0, 1.0):
    if other_alpha != alpha:
      other = _value(_leaky_policy(mu, pi, rho_bar, other_alpha),
                     transitions, rewards)
      assert np.max(np.abs(other - expected)) > 1e-2, other_alpha
      assert np.max(np.abs(operator(other) - other)) > 1e-3, other_alpha
