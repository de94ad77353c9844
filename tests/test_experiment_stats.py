"""The paired tests behind "Is it real?": McNemar's exact test against worked examples and exact
arithmetic, and the score interval's coverage on synthetic data with a known mean (fixed seeds)."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest

from kennel.experiments import stats


def exact_two_sided(k: int, n: int) -> float:
    if n == 0:
        return 1.0
    tail = sum(Fraction(math.comb(n, i), 2 ** n) for i in range(min(k, n - k) + 1))
    return float(min(Fraction(1), 2 * tail))


def pairs(only_a: int, only_b: int, both: int = 5, neither: int = 3) -> tuple[list[bool], list[bool]]:
    a = [True] * only_a + [False] * only_b + [True] * both + [False] * neither
    b = [False] * only_a + [True] * only_b + [True] * both + [False] * neither
    return a, b


@pytest.mark.parametrize(("only_a", "only_b", "p"), [
    (7, 1, 0.0703125),          # 2 * (1 + 8) / 2^8
    (1, 7, 0.0703125),
    (10, 2, 0.03857421875),     # 2 * (1 + 12 + 66) / 2^12
    (6, 0, 0.03125),            # 2 / 2^6
    (4, 4, 1.0),
    (0, 0, 1.0),                # no discordant pair: no evidence either way
])
def test_mcnemar_worked_examples(only_a: int, only_b: int, p: float) -> None:
    a, b = pairs(only_a, only_b)
    result = stats.mcnemar_exact(a, b)
    assert result.p_value == pytest.approx(p, rel=1e-12)
    assert result.discordant == (only_a, only_b)
    assert result.delta == pytest.approx((only_b - only_a) / len(a))
    assert result.n == len(a)


def test_mcnemar_matches_exact_arithmetic_at_large_counts() -> None:
    rng = random.Random(7)
    for _ in range(40):
        n = rng.randint(1, 3000)
        k = rng.randint(0, n)
        assert stats.binomial_two_sided(k, n) == pytest.approx(exact_two_sided(k, n), rel=1e-9, abs=1e-300)
    # Far in the tail, where 0.5^n underflows a float: still a small positive number, not 0 or NaN.
    tiny = stats.binomial_two_sided(0, 5000)
    assert 0.0 <= tiny < 1e-300


def coverage(make, *, n: int, trials: int, mean: float, bootstrap_max: int, rounds: int = 1000) -> float:
    rng = random.Random(11)
    hits = 0
    for t in range(trials):
        diffs = [make(rng) for _ in range(n)]
        result = stats.paired_mean_test([0.0] * n, diffs, bootstrap_max=bootstrap_max, rounds=rounds, seed=t)
        assert result.ci_low is not None and result.ci_high is not None
        hits += result.ci_low <= mean <= result.ci_high
    return hits / trials


def test_bootstrap_interval_covers_the_true_mean_about_95_percent() -> None:
    # Normal and skewed (exponential) paired differences with known means; bootstrap path (n <= 500).
    normal = coverage(lambda r: r.gauss(0.3, 1.0), n=40, trials=150, mean=0.3, bootstrap_max=500, rounds=400)
    skewed = coverage(lambda r: r.expovariate(1.0) - 0.5, n=60, trials=150, mean=0.5, bootstrap_max=500, rounds=400)
    assert 0.88 <= normal <= 0.99, normal
    assert 0.86 <= skewed <= 0.99, skewed


def test_normal_interval_beyond_the_bootstrap_covers_too() -> None:
    result = coverage(lambda r: r.gauss(-0.1, 2.0), n=800, trials=300, mean=-0.1, bootstrap_max=500)
    assert 0.92 <= result <= 0.98, result


def test_the_interval_and_p_value_are_reproducible_and_agree() -> None:
    rng = random.Random(3)
    a = [rng.random() for _ in range(120)]
    b = [x + 0.08 + rng.gauss(0, 0.2) for x in a]
    first, second = stats.paired_mean_test(a, b), stats.paired_mean_test(a, b)
    assert first == second and first.method == "bootstrap"
    assert first.delta == pytest.approx(math.fsum(y - x for x, y in zip(a, b, strict=True)) / 120)
    # Zero outside the interval and p < 0.05 go together (both come from the same resamples).
    assert (first.ci_low > 0) == (first.p_value < 0.05)
    large = stats.paired_mean_test(a * 10, b * 10)
    assert large.method == "normal" and large.ci_low is not None and large.ci_low > 0 and large.p_value < 0.001


def test_no_spread_and_no_pairs() -> None:
    same = stats.paired_mean_test([1.0, 2.0], [1.0, 2.0])
    assert same.delta == 0 and same.p_value == 1.0 and (same.ci_low, same.ci_high) == (0, 0)
    assert stats.paired_mean_test([], []).n == 0
    assert stats.describe(None) == "no paired values"
    text = stats.describe(stats.TestResult("bootstrap", 412, 3.1, 0.03, 0.4, 5.8))
    assert text == "Δ +3.1, 95% CI [0.4, 5.8], p = 0.030, n = 412"
