import numpy as np
import pytest
from scipy import stats

from bayesglmm.model.families import LINKS, get_family

ETA = np.linspace(-4, 3, 15)  # cloglog saturates to 1 - eps above eta ~ 3.6


@pytest.mark.parametrize("name", ["logit", "probit", "cloglog"])
def test_binary_links_invert_and_differentiate(name):
    link = LINKS[name]
    mu = link.linkinv(ETA)
    np.testing.assert_allclose(link.linkfun(mu), ETA, atol=1e-8)
    h = 1e-6
    numeric = (link.linkinv(ETA + h) - link.linkinv(ETA - h)) / (2 * h)
    # central differences: relative error ~1e-6 where mu_eta is large, absolute 1e-9 where tiny
    np.testing.assert_allclose(link.mu_eta(ETA), numeric, rtol=1e-5, atol=1e-9)


def test_defaults_as_in_r():
    assert get_family("binomial").link.name == "logit"
    assert get_family("poisson").link.name == "log"
    assert get_family("gaussian").link.name == "identity"
    assert get_family("negative_binomial").link.name == "log"
    assert get_family("bernoulli").name == "binomial"


def test_logliks_are_the_normalized_densities():
    y, n, mu = np.array([0.0, 3, 5]), np.array([5.0, 5, 5]), np.array([0.2, 0.5, 0.9])
    np.testing.assert_allclose(
        get_family("binomial").loglik(y, mu, n), stats.binom.logpmf(y, n, mu)
    )
    np.testing.assert_allclose(
        get_family("poisson").loglik(y, mu * 4), stats.poisson.logpmf(y, mu * 4)
    )
    nb = get_family("negative_binomial").loglik(y, mu * 4, dispersion=2.0)
    # NB2 with mean m and shape a: variance m + m^2 / a
    m, a = mu * 4, 2.0
    np.testing.assert_allclose(nb, stats.nbinom.logpmf(y, a, a / (a + m)))
    fam = get_family("negative_binomial")
    assert fam.variance(np.array([2.0]), 2.0)[0] == pytest.approx(4.0)


@pytest.mark.parametrize("name", ["logit", "probit", "cloglog", "log", "identity"])
def test_second_derivative_and_exact_log_means(name):
    link = LINKS[name]
    eta = np.linspace(-3, 1, 9)
    h = 1e-5
    mu, mu_eta = link.linkinv(eta), link.mu_eta(eta)
    numeric = (link.mu_eta(eta + h) - link.mu_eta(eta - h)) / (2 * h)
    np.testing.assert_allclose(link.mu_eta2(eta, mu, mu_eta), numeric, rtol=1e-6, atol=1e-9)
    if link.log_inv is not None:
        np.testing.assert_allclose(link.log_inv(eta), np.log(mu), rtol=1e-12)
    if link.log1m_inv is not None:
        np.testing.assert_allclose(link.log1m_inv(eta), np.log1p(-mu), rtol=1e-12)
        # in the far tail, where mu rounds to 1, log(1 - mu) stays finite and exact
        assert np.isfinite(link.log1m_inv(np.array([40.0]))[0])


def test_family_objects_pickle_and_compare():
    import pickle

    fam = get_family("binomial", "probit")
    assert pickle.loads(pickle.dumps(fam)) == fam
    assert fam != get_family("binomial") and fam.canonical is False
    assert get_family("poisson").canonical and get_family("gaussian").scale(2.0) == 4.0
