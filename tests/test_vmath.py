"""The vectorizable exp and log1p against NumPy."""

import numpy as np

from bayesglmm.bayes import vmath

# measured maximum relative errors are below 5e-16; 2e-15 leaves room for other CPUs' FMA
REL = 2e-15


def test_exp_matches_numpy_over_its_range():
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.normal(0, 5, 20000), np.linspace(-700, 700, 14001), [0.0, -0.0]])
    out, bits = np.empty_like(a), np.empty(a.shape, dtype=np.int64)
    vmath.exp_into(a, out, bits)
    np.testing.assert_allclose(out, np.exp(a), rtol=REL, atol=0)
    big = np.array([-800.0, 800.0])
    vmath.exp_into(big, out[:2], bits[:2])
    # clamped to [-700, 700]
    np.testing.assert_allclose(out[:2], np.exp([-700.0, 700.0]), rtol=REL, atol=0)


def test_log1p_on_the_unit_interval():
    e = np.concatenate([np.linspace(0, 1, 10001), np.exp(-np.linspace(0, 700, 5000))])
    out = np.empty_like(e)
    vmath.log1p_unit_into(e, out)
    np.testing.assert_allclose(out, np.log1p(e), rtol=REL, atol=0)


def test_exp_of_minus_abs():
    rng = np.random.default_rng(1)
    a = np.concatenate([rng.normal(0, 5, 20000), np.linspace(-700, 700, 14001), [0.0, -0.0]])
    out, bits = np.empty_like(a), np.empty(a.shape, dtype=np.int64)
    vmath.exp_negabs_into(a, out, bits)
    np.testing.assert_allclose(out, np.exp(-np.abs(a)), rtol=REL, atol=0)
