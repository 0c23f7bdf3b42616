import numpy as np
import pandas as pd
import pytest

from bayesglmm import GLMM, priors
from bayesglmm.errors import PriorError


@pytest.fixture
def frame():
    rng = np.random.default_rng(1)
    n = 40
    return pd.DataFrame(
        {
            "y": rng.integers(0, 2, n),
            "x": rng.normal(0, 4, n),
            "f": rng.choice(["a", "b"], n),
            "g": np.repeat(np.arange(8), 5),
        }
    )


def test_default_priors_are_documented_values(frame):
    ps = GLMM("y ~ x + f + (x|g)", frame).priors
    assert ps.fixed["Intercept"] == priors.Normal(0.0, 2.5)
    # numeric column: 2.5 / sd(x); indicator column: 2.5
    assert ps.fixed["x"].sigma == pytest.approx(2.5 / frame.x.std(ddof=0))
    assert ps.fixed["f"].sigma == 2.5
    assert ps.random_sd["1+x|g"] == [priors.HalfNormal(2.5), priors.HalfNormal(2.5)]
    assert ps.correlation["1+x|g"] == priors.LKJ(1.0)
    g = GLMM("x ~ f + (1|g)", frame, family="gaussian").priors
    s = frame.x.std(ddof=0)
    assert g.dispersion["sigma"].sigma == pytest.approx(2.5 * s)
    assert g.random_sd["1|g"][0].sigma == pytest.approx(2.5 * s)
    assert "parameter" == ps.table().index.name


def test_user_priors_by_term_group_and_component(frame):
    p = {
        "x": priors.StudentT(3, 0, 1),
        "g": priors.HalfCauchy(1.0),
        "g|x": priors.Exponential(2),
        "Intercept": priors.Normal(0, 5),
    }
    ps = GLMM("y ~ x + (x||g)", frame, priors=p).priors
    assert ps.fixed["x"] == priors.StudentT(3, 0, 1)
    assert ps.random_sd["1|g"] == [priors.HalfCauchy(1.0)]
    assert ps.random_sd["x|g"] == [priors.Exponential(2)]
    assert ps.user_keys == set(p)
    lkj = GLMM("y ~ x + (x|g)", frame, priors={"g": priors.LKJ(2.0, sd=priors.HalfNormal(1))})
    assert lkj.priors.correlation["1+x|g"].eta == 2.0
    assert lkj.priors.random_sd["1+x|g"] == [priors.HalfNormal(1)] * 2


def test_prior_errors_name_the_key(frame):
    with pytest.raises(PriorError, match="'z', which is not a parameter.*valid keys: Intercept"):
        GLMM("y ~ x + (1|g)", frame, priors={"z": priors.Normal()})
    with pytest.raises(PriorError, match="use 'f'"):
        GLMM("y ~ f + (1|g)", frame, priors={"f[b]": priors.Normal()})
    with pytest.raises(PriorError, match="prior on a coefficient and cannot be used for 'g'"):
        GLMM("y ~ x + (1|g)", frame, priors={"g": priors.Normal()})
    with pytest.raises(PriorError, match="prior on a standard deviation.*'x'"):
        GLMM("y ~ x + (1|g)", frame, priors={"x": priors.HalfNormal()})
    with pytest.raises(PriorError, match="has no correlations"):
        GLMM("y ~ x + (1|g)", frame, priors={"g": priors.LKJ(2)})
    with pytest.raises(PriorError, match="bayesglmm.priors object"):
        GLMM("y ~ x + (1|g)", frame, priors={"x": "normal"})


def test_prior_classes_build_in_pymc(frame):
    import pymc as pm

    p = {"g": priors.InverseGamma(2, 1), "x": priors.Cauchy(0, 2)}
    model = GLMM("y ~ x + (1|g)", frame, priors=p).build_pymc(parameterization="centered")
    names = {v.name for v in model.free_RVs}
    assert {"1|g_var", "x", "1|g"} <= names
    assert "1|g_sigma" in {v.name for v in model.deterministics}
    assert isinstance(model, pm.Model)
    assert list(model.coords["g"]) == [str(i) for i in range(8)]
