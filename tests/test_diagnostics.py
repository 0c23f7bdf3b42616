"""bayesglmm.bayes.diagnostics computes ArviZ's R-hat, bulk/tail ESS and MCSE of the mean."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pytest
import xarray as xr

from bayesglmm.bayes.diagnostics import ess_rhat_mcse

#: ArviZ sums squares in a Numba variance where NumPy uses pairwise sums; the two agree to
#: rounding error (measured: below 1e-13 relative on these chains)
RTOL = 1e-10


def _arviz(stacked: np.ndarray) -> tuple[np.ndarray, ...]:
    ds = xr.Dataset({"x": (("chain", "draw", "parameter"), stacked)})
    k = stacked.shape[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rhat = az.rhat(ds)["x"].values if stacked.shape[0] > 1 else np.full(k, np.nan)
        return (
            rhat,
            az.ess(ds, method="bulk")["x"].values,
            az.ess(ds, method="tail")["x"].values,
            az.mcse(ds, method="mean")["x"].values,
        )


def _ar1(rng, chains: int, draws: int, k: int, phi: float) -> np.ndarray:
    x = np.zeros((chains, draws, k))
    e = rng.normal(size=(chains, draws, k))
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x


def _cases():
    rng = np.random.default_rng(20261130)
    yield "ar1", _ar1(rng, 2, 1000, 4, 0.7)
    yield "sticky, odd draws", _ar1(rng, 4, 301, 3, 0.97) + np.arange(3)
    yield "one chain", _ar1(rng, 1, 200, 2, 0.5)
    yield "few draws", rng.normal(size=(2, 5, 2))
    yield "ties", rng.integers(0, 3, size=(2, 400, 3)).astype(float)
    shifted = _ar1(rng, 3, 300, 2, 0.3)
    shifted[1] += 4.0  # chains that disagree: R-hat far above 1
    yield "disagreeing chains", shifted
    special = rng.normal(size=(2, 100, 3))
    special[:, :, 1] = 2.5
    special[0, 3, 2] = np.nan
    yield "constant and missing", special


@pytest.mark.parametrize(
    "name, stacked", list(_cases()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_diagnostics_match_arviz(name, stacked):
    ours = ess_rhat_mcse(stacked)
    ref = _arviz(stacked)
    for label, a, b in zip(("rhat", "ess_bulk", "ess_tail", "mcse"), ref, ours, strict=True):
        np.testing.assert_array_equal(np.isnan(b), np.isnan(a), err_msg=f"{name}: {label}")
        np.testing.assert_allclose(b, a, rtol=RTOL, equal_nan=True, err_msg=f"{name}: {label}")


def test_diagnostics_see_disagreeing_chains():
    """The check can fail: chains with different means give R-hat far above 1."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 500, 1))
    assert ess_rhat_mcse(x)[0][0] < 1.01
    x[1] += 3.0
    assert ess_rhat_mcse(x)[0][0] > 1.5


def test_too_few_draws_give_nan():
    out = ess_rhat_mcse(np.ones((2, 3, 2)))
    assert all(np.isnan(v).all() for v in out)
