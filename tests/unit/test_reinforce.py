"""The REINFORCE policy's shaping of its logits (temperature, tanh constant) and its skip-density penalty: the
probabilities are the shaped softmax, each update is the gradient of the objective it states, and the state
keeps the settings (a state saved before them loads with them off)."""

from __future__ import annotations

import numpy as np
import pytest

from kubenas.spaces import make_space
from kubenas.strategies import make_strategy
from kubenas.strategies.reinforce import Policy

SPACE = make_space("multibranch", layers=3, ops=["conv_3x3", "max_pool_3x3", "avg_pool_3x3"])


def _softmax(z):
    e = np.exp(z - np.max(z))
    return e / e.sum()


def _objective(policy: Policy, logits: dict, arch: dict, advantage: float) -> float:
    """What one update climbs: advantage x log p(arch) + entropy weight x entropy - skip weight x KL(p || target)
    over the yes/no decisions, at the given logits."""
    saved, policy.logits = policy.logits, logits
    try:
        total = advantage * policy.log_prob(arch) + policy.entropy_weight * policy.entropy()
        target = np.array([1 - policy.skip_target, policy.skip_target])
        for name, z in logits.items():
            if name.startswith("skip_"):
                p = _softmax(policy._shaped(np.asarray(z))[0])
                total -= policy.skip_weight * float((p * np.log(p / target)).sum())
        return total
    finally:
        policy.logits = saved


@pytest.mark.parametrize(
    "shaping",
    [{}, {"temperature": 5.0}, {"tanh_const": 2.25}, {"temperature": 5.0, "tanh_const": 2.25, "skip_weight": 0.8}],
)
def test_an_update_is_a_gradient_step_on_the_objective(shaping):
    rng = np.random.default_rng(0)
    policy = Policy(SPACE, lr=1e-3, entropy=0.05, **shaping)
    policy.logits = {k: rng.normal(0, 2, len(v)).tolist() for k, v in policy.logits.items()}
    policy.baseline = 0.2
    arch = SPACE.sample(3)
    before = {k: list(v) for k, v in policy.logits.items()}
    policy.update(arch, 0.7)  # advantage 0.5
    for name, z in before.items():
        numeric = []
        for i in range(len(z)):
            up = {**before, name: [v + 1e-6 * (j == i) for j, v in enumerate(z)]}
            down = {**before, name: [v - 1e-6 * (j == i) for j, v in enumerate(z)]}
            numeric.append((_objective(policy, up, arch, 0.5) - _objective(policy, down, arch, 0.5)) / 2e-6)
        step = (np.asarray(policy.logits[name]) - np.asarray(z)) / policy.lr
        assert np.allclose(step, numeric, atol=1e-5), (name, step, numeric)


def test_temperature_and_the_tanh_constant_shape_the_probabilities():
    policy = Policy(SPACE, temperature=5.0, tanh_const=2.25)
    policy.logits["op_1"] = [10.0, 0.0, -40.0]
    expected = _softmax(2.25 * np.tanh(np.array([10.0, 0.0, -40.0]) / 5.0))
    assert np.allclose(policy.probabilities()["op_1"], expected)
    # however sure the logits grow, a tanh constant bounds the odds of two choices by e^(2 x 2.25)
    policy.logits["op_1"] = [1e6, -1e6, -1e6]
    p = policy.probabilities()["op_1"]
    assert p[0] / p[1] == pytest.approx(np.exp(4.5))


def test_the_skip_penalty_pulls_skip_connections_to_their_target_and_leaves_operations_alone():
    policy = Policy(SPACE, lr=0.5, entropy=0.0, skip_target=0.4, skip_weight=1.0)
    arch = SPACE.sample(0)
    for _ in range(300):
        policy.update(arch, 1.0)  # the same reward every time: no advantage, only the penalty moves the logits
    probs = policy.probabilities()
    skips = [name for name in probs if name.startswith("skip_")]
    assert skips and all(probs[name][1] == pytest.approx(0.4, abs=1e-3) for name in skips)
    assert all(probs[f"op_{i}"] == pytest.approx([1 / 3] * 3) for i in (1, 2, 3))


def test_the_settings_reach_the_strategy_and_its_state_and_an_older_state_loads_with_them_off():
    options = {"temperature": 5.0, "tanh_const": 2.25, "skip_target": 0.3, "skip_weight": 0.8}
    strategy = make_strategy("reinforce", SPACE, seed=0, lr=0.05, baseline_decay=0.99, entropy=1e-4, **options)
    state = strategy.policy.state_dict()
    assert {k: state[k] for k in options} == options and (state["lr"], state["baseline_decay"]) == (0.05, 0.99)
    fresh = Policy(SPACE)
    fresh.load_state_dict(state)
    assert fresh.state_dict() == state
    old = {k: v for k, v in state.items() if k not in options}
    fresh.load_state_dict(old)
    assert (fresh.temperature, fresh.tanh_const, fresh.skip_weight) == (None, None, 0.0)


@pytest.mark.parametrize(
    "options,words",
    [
        ({"temperature": 0}, "temperature must be a number > 0, or null for none, got 0"),
        ({"tanh_const": -1}, "tanh_const must be a number > 0"),
        ({"skip_target": 1.5}, "skip_target must be a number in [0.0, 1.0], got 1.5"),
        ({"skip_weight": -0.1}, "skip_weight must be a number in [0.0, 100.0]"),
    ],
)
def test_bad_settings_are_named(options, words):
    with pytest.raises(ValueError) as err:
        make_strategy("reinforce", SPACE, seed=0, **options)
    assert words in str(err.value)
