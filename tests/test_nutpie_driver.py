"""nutpie driven from its extension module (bayesglmm.bayes.nutpie_driver): the same draws
as nutpie.sample, nutpie.sample's own keywords handed to it, and in a cold process the
result's libraries imported while the chains run."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from bayesglmm import GLMM, simulate
from bayesglmm.bayes import compiled, density_sampler, nutpie_driver
from bayesglmm.bayes.callbacks import callback_model


def _model(link="logit"):
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"x": rng.normal(size=120), "g": rng.integers(0, 8, 120)})
    df = simulate("y ~ x + (1|g)", df, [0.2, 0.8], {"g": 0.7}, random_seed=5)
    return GLMM("y ~ x + (1|g)", df, link=link)


def _both(model, cm, **kwargs):
    import nutpie

    common = dict(draws=40, tune=60, chains=2, cores=1, seed=11, save_warmup=False, **kwargs)
    ours = nutpie_driver.sample(cm, progressbar=False, **common)
    theirs = nutpie.sample(cm, progress_bar=False, **common)
    return ours, theirs


@pytest.mark.parametrize("density", ["specialised", "general"])
def test_the_driver_draws_what_nutpie_sample_draws(density):
    """Same seed and settings: the draws and the sampler statistics are identical, on both
    compiled densities (the general one through the probit link)."""
    if density == "specialised":
        model = _model()
        cm = callback_model(model, compiled.kernel_data(model))
    else:
        model = _model("probit")
        cm = density_sampler.prepare(model, "noncentered")[1]
    ours, theirs = _both(model, cm, target_accept=0.9, use_grad_based_mass_matrix=False)
    assert set(ours.groups()) == set(theirs.groups())
    for name in theirs.posterior.data_vars:
        np.testing.assert_array_equal(ours.posterior[name].values, theirs.posterior[name].values)
    for name in ("step_size", "n_steps", "diverging", "energy"):
        np.testing.assert_array_equal(
            ours.sample_stats[name].values, theirs.sample_stats[name].values
        )
    assert ours.posterior.sizes["draw"] == 40 and ours.posterior.sizes["chain"] == 2


def test_settings_and_the_keywords_nutpie_sample_keeps():
    """Settings fields (and the driver's own two keywords) stay with the driver; the other
    keywords of nutpie.sample send the call to it."""
    assert not nutpie_driver.needs_nutpie_sample({})
    assert not nutpie_driver.needs_nutpie_sample(
        {"maxdepth": 6, "target_accept": 0.9, "low_rank_modified_mass_matrix": True}
    )
    assert nutpie_driver.needs_nutpie_sample({"transform_adapt": True})
    assert nutpie_driver.needs_nutpie_sample({"progress_rate": 500})
    s = nutpie_driver.settings_for(7, draws=30, tune=20, chains=3, maxdepth=6)
    assert (s.num_draws, s.num_tune, s.num_chains, s.maxdepth) == (30, 20, 3, 6)
    low = nutpie_driver.settings_for(
        7, draws=1, tune=1, chains=1, low_rank_modified_mass_matrix=True
    )
    assert low.mass_matrix_gamma is not None  # a LowRank-only field


def test_a_cold_fit_imports_arviz_while_the_chains_run():
    """In a new process nothing imports ArviZ before the sampler has started: the import
    (about 3 s) runs beside the chains, and the result is ArviZ InferenceData all the same."""
    code = textwrap.dedent(
        """
        import json, sys
        import numpy as np, pandas as pd
        from bayesglmm import GLMM
        from bayesglmm.bayes import nutpie_driver
        seen = {}
        real = nutpie_driver._prepare_result_libraries
        def spy():
            seen["arviz_before"] = "arviz" in sys.modules
            seen["nutpie_package_before"] = "nutpie" in sys.modules
            real()
        nutpie_driver._prepare_result_libraries = spy
        rng = np.random.default_rng(0)
        df = pd.DataFrame({"x": rng.normal(size=60), "g": rng.integers(0, 6, 60)})
        df["y"] = (df.x + rng.normal(size=60) > 0).astype(int)
        fit = GLMM("y ~ x + (1|g)", df).fit(method="nuts", draws=30, tune=30, chains=1,
                                            random_seed=1, progressbar=False)
        import arviz as az
        seen["idata"] = isinstance(fit.idata, az.InferenceData)
        print(json.dumps(seen))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"arviz_before": False, "nutpie_package_before": False, "idata": True}
