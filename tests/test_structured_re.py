"""Structured random-effect covariances: glmmTMB's ``ar1(time + 0 | g)`` and known
relationship matrices (``GLMM(..., relmat={"animal": K})``).

Reference numbers come from R 4 (glmmTMB 1.1.5, lme4) on the data generated below, written
to CSV with ``frame.to_csv(path, index=False)``; the R calls are quoted beside the numbers.
Both sides use the Laplace approximation (exact for the Gaussian models), so they agree to
the optimizers' precision: the tolerance ``REL`` (1e-4 relative) is far above the
differences seen (below 1e-5) and far below what a wrong covariance would change.
"""

import numpy as np
import pandas as pd
import pytest
import scipy.optimize

from bayesglmm.errors import DataError, FormulaError, MethodError
from bayesglmm.frequentist.structured import ar1_cholesky
from bayesglmm.glmm import GLMM
from bayesglmm.methods import available_methods, get_record
from bayesglmm.model.formula import parse_formula
from bayesglmm.model.relmat import additive_relationship
from bayesglmm.model.simulate import simulate

#: relative agreement with R (both Laplace; the optimizers stop within ~1e-6)
REL = 1e-4
TIMES = [f"t{i}" for i in range(6)]


def ar1_frame(seed: int, family: str, groups: int = 40, times: int = 6) -> pd.DataFrame:
    """y = 0.5 + 0.3 x + b[g, t] (+ N(0, 0.5^2)), b[g] ~ N(0, 0.6^2 R(0.7))."""
    rng = np.random.default_rng(seed)
    R = 0.7 ** np.abs(np.subtract.outer(np.arange(times), np.arange(times)))
    b = rng.multivariate_normal(np.zeros(times), 0.36 * R, size=groups)
    g = np.repeat(np.arange(groups), times)
    t = np.tile(np.arange(times), groups)
    x = rng.normal(size=groups * times)
    eta = 0.5 + 0.3 * x + b[g, t]
    if family == "poisson":
        y = rng.poisson(np.exp(eta))
    else:
        y = np.round(eta + rng.normal(scale=0.5, size=groups * times), 6)
    levels = [f"t{i}" for i in range(times)]
    return pd.DataFrame(
        {
            "y": y,
            "x": np.round(x, 6),
            "g": [f"g{i:02d}" for i in g],
            "time": pd.Categorical([levels[i] for i in t], categories=levels),
        }
    )


def pedigree(seed: int = 3, n: int = 60, founders: int = 12):
    """Random mating among earlier animals; 15% of dams unknown."""
    rng = np.random.default_rng(seed)
    sire, dam = np.full(n, -1), np.full(n, -1)
    for i in range(founders, n):
        sire[i] = rng.integers(0, i)
        dam[i] = rng.integers(0, i)
        while dam[i] == sire[i]:
            dam[i] = rng.integers(0, i)
        if rng.random() < 0.15:
            dam[i] = -1
    return sire, dam


def animal_frame(family: str, seed: int = 3, reps: int = 3):
    """Three records per animal; breeding values a ~ N(0, 0.25 A)."""
    sire, dam = pedigree(seed)
    n = sire.size
    A = additive_relationship(sire, dam)
    rng = np.random.default_rng(seed + 100)
    a = np.linalg.cholesky(A) @ rng.normal(size=n) * 0.5
    animal = np.repeat(np.arange(n), reps)
    x = np.round(rng.normal(size=animal.size), 6)
    eta = 0.4 + 0.3 * x + a[animal]
    if family == "poisson":
        y = rng.poisson(np.exp(eta))
    else:
        y = np.round(eta + rng.normal(scale=0.6, size=eta.size), 6)
    labels = [f"a{i:02d}" for i in range(n)]
    frame = pd.DataFrame({"y": y, "x": x, "animal": [labels[i] for i in animal]})
    return frame, pd.DataFrame(A, index=labels, columns=labels)


def rel(a, b):
    return abs(a - b) / abs(b)


# ------------------------------------------------------------------------------ formula


def test_ar1_term_parses_with_its_structure():
    s = parse_formula("y ~ x + ar1(time + 0 | g) + (1|h)", "poisson")
    ar1, plain = s.random
    assert (ar1.expr, ar1.group, ar1.structure) == ("time + 0", "g", "ar1")
    assert ar1.label == "ar1(time + 0 | g)"
    assert not hasattr(plain, "structure")
    with pytest.raises(FormulaError, match="one '|'"):
        parse_formula("y ~ ar1(time + 0 || g)")
    with pytest.raises(FormulaError, match="one grouping factor"):
        parse_formula("y ~ ar1(time + 0 | a/b)")


def test_ar1_needs_a_factor_without_intercept():
    d = ar1_frame(1, "poisson")
    numeric = d.assign(time=d["time"].cat.codes.astype(float))
    with pytest.raises(DataError, match="'time' must be a factor.*glmmTMB"):
        GLMM("y ~ x + ar1(time + 0 | g)", numeric, family="poisson")
    with pytest.raises(FormulaError, match="without an intercept"):
        GLMM("y ~ x + ar1(time | g)", d, family="poisson")
    t = GLMM("y ~ x + ar1(time + 0 | g)", d, family="poisson").design.random[0]
    assert t.structure == "ar1" and t.n_columns == 6 and t.component_names == ["g|ar1"]


# ------------------------------------------------------------------------------ AR(1), Laplace


def test_ar1_poisson_laplace_matches_glmmtmb():
    # d <- read.csv("ar1_pois.csv"); d$time <- factor(d$time, levels = paste0("t", 0:5))
    # m <- glmmTMB(y ~ x + ar1(time + 0 | g), family = poisson, data = d)
    # logLik(m) -448.014137666; fixef(m)$cond 0.503285071290 0.267763478032
    # VarCorr(m)$cond$g: Std.Dev. 0.629910343024, Corr (ar1) 0.459058004536
    fit = GLMM("y ~ x + ar1(time + 0 | g)", ar1_frame(1, "poisson"), family="poisson").fit(
        method="laplace"
    )
    assert rel(fit.loglik, -448.014137666) < 1e-7
    assert rel(fit.fixed_effects["Intercept"], 0.503285071290) < REL
    assert rel(fit.fixed_effects["x"], 0.267763478032) < REL
    assert rel(np.sqrt(fit.variance_components["g|ar1"]), 0.629910343024) < REL
    assert rel(fit.re_correlations["g|time[t0],time[t1]"], 0.459058004536) < REL
    # glmmTMB's VarCorr layout: the sd, then rho marked (ar1)
    row = next(s for s in fit.report().splitlines() if s.split()[:2] == ["g", "ar1"])
    assert row.split()[3:] == ["0.6299", "0.46", "(ar1)"]
    assert list(fit.random_effects["ar1(time + 0)|g"].columns) == [f"time[{t}]" for t in TIMES]


def test_ar1_gaussian_laplace_matches_glmmtmb_ml():
    # m <- glmmTMB(y ~ x + ar1(time + 0 | g), family = gaussian, data = d, REML = FALSE)
    # logLik -253.273452927; fixef 0.463306161719 0.367199179569;
    # Std.Dev. 0.483615793528, Corr 0.812950689765, sigma(m) 0.564498029065
    fit = GLMM("y ~ x + ar1(time + 0 | g)", ar1_frame(2, "gaussian"), family="gaussian").fit(
        method="laplace"
    )
    assert rel(fit.loglik, -253.273452927) < 1e-7
    assert rel(fit.fixed_effects["Intercept"], 0.463306161719) < REL
    assert rel(fit.fixed_effects["x"], 0.367199179569) < REL
    assert rel(np.sqrt(fit.variance_components["g|ar1"]), 0.483615793528) < REL
    assert rel(fit.re_correlations["g|time[t0],time[t1]"], 0.812950689765) < REL
    assert rel(fit.dispersion["sigma"], 0.564498029065) < REL
    # a new group is predicted from the population: Var(eta) gains var(g|ar1)
    new = pd.DataFrame({"x": [0.0], "g": ["new"], "time": pd.Categorical(["t3"], categories=TIMES)})
    p0 = fit.predict(new, re_form="~0", interval="confidence")
    p1 = fit.predict(new, allow_new_levels=True, interval="confidence")
    assert p1["estimate"].iloc[0] == pytest.approx(p0["estimate"].iloc[0])
    var0 = p0["std_error"].iloc[0] ** 2
    assert p1["std_error"].iloc[0] ** 2 - var0 == pytest.approx(
        fit.variance_components["g|ar1"], rel=1e-9
    )


# ------------------------------------------------------------------------------ relmat


def test_additive_relationship_by_the_tabular_method():
    # 0, 1 founders; 2 = 0 x 1; 3 = 0 x 2 (parent-offspring mating); 4 = 2 x unknown
    A = additive_relationship([-1, -1, 0, 0, 2], [-1, -1, 1, 2, -1])
    assert A[2, 2] == 1.0 and A[0, 2] == 0.5 and A[0, 1] == 0.0
    assert A[3, 3] == pytest.approx(1.25)  # inbred: F = A[0, 2] / 2
    assert A[0, 3] == pytest.approx(0.75) and A[2, 3] == pytest.approx(0.75)
    assert A[4, 2] == pytest.approx(0.5) and A[4, 0] == pytest.approx(0.25)
    with pytest.raises(DataError, match="parents must come before"):
        additive_relationship([-1, 2, -1], [-1, -1, -1])


def test_relmat_is_checked_against_the_factor():
    d, K = animal_frame("poisson")
    f = "y ~ x + (1|animal)"
    with pytest.raises(DataError, match=r"relmat\['animal'\].*\['a05'\].*not in K"):
        GLMM(f, d, family="poisson", relmat={"animal": K.drop(index="a05", columns="a05")})
    with pytest.raises(DataError, match=r"relmat\['animal'\]: K is not symmetric"):
        bad = K.copy()
        bad.iloc[0, 1] += 0.1
        GLMM(f, d, family="poisson", relmat={"animal": bad})
    with pytest.raises(DataError, match="not positive definite"):
        GLMM(f, d, family="poisson", relmat={"animal": K - 2.0 * np.eye(len(K))})
    with pytest.raises(DataError, match="must be square"):
        GLMM(f, d, family="poisson", relmat={"animal": K.to_numpy()[:, :10]})
    with pytest.raises(DataError, match="not grouping factors"):
        GLMM(f, d, family="poisson", relmat={"sire": K})
    with pytest.raises(DataError, match="applies to a random intercept"):
        GLMM("y ~ x + (x|animal)", d, family="poisson", relmat={"animal": K})
    # an unlabelled K in the factor's level order is the same model
    a = GLMM(f, d, family="poisson", relmat={"animal": K}).design.random[0]
    b = GLMM(f, d, family="poisson", relmat={"animal": K.to_numpy()}).design.random[0]
    assert a.levels == b.levels and (a.relmat - b.relmat).nnz == 0
    assert a.structure == "relmat" and a.relmat.nnz < 0.6 * len(K) ** 2  # L kept sparse
    # ancestors without records stay levels of the term (the animal model)
    founders = [f"a{i:02d}" for i in range(12)]
    t = GLMM(f, d[~d["animal"].isin(founders)], family="poisson", relmat={"animal": K})
    t = t.design.random[0]
    assert t.levels == K.index.tolist() and not np.isin(np.arange(12), t.index).any()


def test_relmat_gaussian_laplace_is_the_exact_ml():
    d, K = animal_frame("gaussian")
    fit = GLMM("y ~ x + (1|animal)", d, family="gaussian", relmat={"animal": K}).fit(
        method="laplace"
    )
    y = d["y"].to_numpy()
    X = np.column_stack([np.ones(len(d)), d["x"]])
    Z = (d["animal"].to_numpy()[:, None] == K.index.to_numpy()[None, :]).astype(float)
    ZKZ = Z @ K.to_numpy() @ Z.T

    def loglik(p):  # y ~ N(X b, s2a Z K Z' + s2e I), dense
        V = np.exp(2 * p[0]) * ZKZ + np.exp(2 * p[1]) * np.eye(len(y))
        r = y - X @ p[2:]
        c = np.linalg.cholesky(V)
        w = np.linalg.solve(c, r)
        return -0.5 * (len(y) * np.log(2 * np.pi) + 2 * np.log(np.diag(c)).sum() + w @ w)

    at_fit = np.r_[
        0.5 * np.log(fit.variance_components["animal"]),
        np.log(fit.dispersion["sigma"]),
        fit.fixed_effects.to_numpy(),
    ]
    assert loglik(at_fit) == pytest.approx(fit.loglik, rel=1e-10)
    best = scipy.optimize.minimize(lambda p: -loglik(p), at_fit, method="BFGS", tol=1e-10)
    assert -best.fun - fit.loglik < 1e-6  # the fit is at the exact maximum
    np.testing.assert_allclose(best.x, at_fit, atol=1e-3)


def test_relmat_poisson_laplace_matches_lme4_with_the_cholesky_design():
    # d$animal <- factor(d$animal); K <- as.matrix(read.csv("K.csv", row.names = 1))
    # L <- t(chol(K)); lf <- glFormula(y ~ x + (1|animal), data = d, family = poisson)
    # lf$reTrms$Zt <- as(t(L) %*% lf$reTrms$Zt, "CsparseMatrix")            # Z -> Z L
    # devf <- do.call(mkGlmerDevfun, c(lf, list(control = glmerControl(tolPwrss = 1e-12))))
    # opt <- optimizeGlmer(devf); devf <- updateGlmerDevfun(devf, lf$reTrms)
    # opt <- optimizeGlmer(devf, stage = 2, control = list(rhobeg = 2e-3, rhoend = 1e-10))
    # m <- mkMerMod(environment(devf), opt, lf$reTrms, fr = lf$fr)
    # logLik -262.348784659; opt$par (theta, beta) 0.310969246617 0.186693375425 0.248750952230
    d, K = animal_frame("poisson")
    model = GLMM("y ~ x + (1|animal)", d, family="poisson", relmat={"animal": K})
    fit = model.fit(method="laplace")
    assert rel(fit.loglik, -262.348784659) < 1e-7
    assert rel(np.sqrt(fit.variance_components["animal"]), 0.310969246617) < REL
    assert rel(fit.fixed_effects["Intercept"], 0.186693375425) < REL
    assert rel(fit.fixed_effects["x"], 0.248750952230) < REL
    # breeding values b = sigma L u are correlated as K; levels outside K are refused
    assert fit.random_effects["1|animal"].index.tolist() == K.index.tolist()
    new = pd.DataFrame({"x": [0.0], "animal": ["a99"]})
    with pytest.raises(MethodError, match="not in its relationship matrix"):
        fit.predict(new, allow_new_levels=True)


# ------------------------------------------------------------------------------ methods


def test_only_methods_that_declare_a_structure_take_it():
    ar1 = GLMM("y ~ x + ar1(time + 0 | g)", ar1_frame(1, "poisson"), family="poisson")
    d, K = animal_frame("poisson")
    ped = GLMM("y ~ x + (1|animal)", d, family="poisson", relmat={"animal": K})
    takes = {"ar1": {"laplace", "nuts"}, "relmat": {"laplace", "nuts"}}
    for name in available_methods():
        rec = get_record(name)
        for kind, model in (("ar1", ar1), ("relmat", ped)):
            reason = rec.applies(model.design)
            if name in takes[kind]:
                assert reason is None, (name, reason)
            else:
                assert reason is not None and "does not take" in reason, (name, reason)
                assert "\n" not in reason
    with pytest.raises(MethodError, match=r"'pql' does not take an AR\(1\) term .*'laplace'"):
        ar1.fit(method="pql")
    with pytest.raises(MethodError, match="compiled' does not cover the structured term"):
        ped.fit(method="nuts", nuts_sampler="compiled")


# ------------------------------------------------------------------------------ simulate


def test_simulate_draws_the_structured_effects():
    frame = ar1_frame(7, "poisson", groups=1500, times=4)
    sim = simulate(
        "y ~ x + ar1(time + 0 | g)",
        frame,
        {"Intercept": 0.0, "x": 0.0},
        {"g|ar1": 0.64},
        correlations={"g|ar1": -0.5},
        family="poisson",
        random_seed=3,
    )
    b = sim.attrs["truth"]["random_effects"]["ar1(time + 0)|g"].to_numpy()
    # 1500 groups: the sd of an empirical correlation is below 0.03, of a variance ~0.03
    assert np.corrcoef(b[:, 0], b[:, 1])[0, 1] == pytest.approx(-0.5, abs=0.1)
    assert np.corrcoef(b[:, 0], b[:, 2])[0, 1] == pytest.approx(0.25, abs=0.1)
    assert b.var(axis=0).mean() == pytest.approx(0.64, abs=0.08)
    d, K = animal_frame("poisson")
    sims = [
        simulate(
            "y ~ x + (1|animal)",
            d,
            {"Intercept": 0.0, "x": 0.0},
            {"animal": 1.0},
            family="poisson",
            random_seed=s,
            relmat={"animal": K},
        ).attrs["truth"]["random_effects"]["1|animal"]["Intercept"]
        for s in range(200)
    ]
    emp = np.cov(np.array(sims).T)
    # 200 draws: an empirical covariance entry has sd ~0.07-0.14; averaged over the pairs of
    # relatives (K_ij >= 0.25) and of unrelated animals (K_ij = 0) it is within ~0.02 of K's
    # mean there (independent effects would give 0 for the relatives, whose K averages > 0.3)
    A = K.to_numpy()
    off = ~np.eye(len(A), dtype=bool)
    relatives, unrelated = off & (A >= 0.25), off & (A == 0)
    assert A[relatives].mean() > 0.3 and relatives.sum() > 100 and unrelated.sum() > 100
    assert emp[relatives].mean() == pytest.approx(A[relatives].mean(), abs=0.06)
    assert emp[unrelated].mean() == pytest.approx(0.0, abs=0.06)
    assert np.diag(emp).mean() == pytest.approx(np.diag(A).mean(), abs=0.06)


# ------------------------------------------------------------------------------ NUTS


def _at_values(model, name, point):
    """A deterministic of ``model`` at the values of ``point`` (not at random draws)."""
    expr = model.replace_rvs_by_values([model[name]])[0]
    return model.compile_fn(expr, inputs=model.value_vars, on_unused_input="ignore")(point)


def test_pymc_model_of_structured_terms():
    d, K = animal_frame("poisson")
    ped = GLMM("y ~ x + (1|animal)", d, family="poisson", relmat={"animal": K}).build_pymc()
    assert list(ped.coords["animal"]) == K.index.tolist()
    z = np.random.default_rng(0).normal(size=len(K))
    point = ped.initial_point()
    point["1|animal_offset"] = z
    point["1|animal_sigma_log__"] = np.log(0.7)
    b = _at_values(ped, "1|animal", point)
    np.testing.assert_allclose(b, 0.7 * np.linalg.cholesky(K.to_numpy()) @ z, rtol=1e-10)

    ar1 = GLMM("y ~ x + ar1(time + 0 | g)", ar1_frame(1, "poisson"), family="poisson")
    m = ar1.build_pymc()
    name = "ar1(time + 0)|g"
    assert list(m.coords[f"{name}_coef"]) == TIMES and len(m.coords["g"]) == 40
    zz = np.random.default_rng(1).normal(size=(40, 6))
    point = m.initial_point()
    point[f"{name}_offset"] = zz
    point[f"{name}_sigma_log__"] = np.log(0.6)
    point[f"{name}_rho_interval__"] = np.log(1.7 / 0.3)  # rho = 0.7
    b = _at_values(m, name, point)
    np.testing.assert_allclose(b, zz @ (0.6 * ar1_cholesky(0.7, 6)).T, rtol=1e-8)


def test_nuts_recovers_ar1_parameters():
    """sigma = 0.6, rho = 0.7 inside the central 99% posterior intervals (for a calibrated
    posterior each check fails with probability 1%, here at most 2%)."""
    model = GLMM(
        "y ~ x + ar1(time + 0 | g)", ar1_frame(11, "poisson", groups=30, times=4), "poisson"
    )
    fit = model.fit(
        method="nuts", draws=250, tune=250, chains=2, cores=1, random_seed=5, progressbar=False
    )
    post = fit.idata.posterior
    for var, truth in (("ar1(time + 0)|g_sigma", 0.6), ("ar1(time + 0)|g_rho", 0.7)):
        lo, hi = np.quantile(post[var].values.ravel(), [0.005, 0.995])
        assert lo < truth < hi, (var, lo, hi)
    # the result names sigma^2 and rho as the Laplace table does, and the report shows both
    sigma = post["ar1(time + 0)|g_sigma"].values
    assert fit.variance_components["g|ar1"] == pytest.approx(float(np.mean(sigma**2)))
    rho = float(post["ar1(time + 0)|g_rho"].values.mean())
    assert fit.re_correlations["g|time[t0],time[t1]"] == pytest.approx(rho)
    text = fit.report()
    rows = [line.split()[0] for line in text.splitlines() if line.strip()]
    assert "var(ar1)" in rows and "cor(time[t0],time[t1])" in rows


def test_tests_and_diagnostics_refuse_what_they_do_not_carry():
    """Code that rebuilds, simulates or integrates a model without its relationship matrix
    or AR(1) structure refuses the fit in one line instead of answering for another model."""
    import bayesglmm as bg

    d, K = animal_frame("poisson")
    fit = GLMM("y ~ x + (1|animal)", d, family="poisson", relmat={"animal": K}).fit("laplace")
    calls = {
        "test_variance": lambda: bg.test_variance(fit, "(1|animal)"),
        "the score test": lambda: bg.test_variance(fit.model, "(1|animal)", method="score"),
        "anova": lambda: bg.anova(fit, test="wald"),
        "information_criteria": lambda: bg.information_criteria(fit),
        "residuals": lambda: bg.residuals(fit, random_seed=1),
        "gof_test": lambda: bg.gof_test(fit, random_seed=1),
        "influence": lambda: bg.influence(fit, group="animal"),
        "ebp": lambda: bg.ebp(fit),
    }
    for what, call in calls.items():
        with pytest.raises(MethodError, match=rf"^{what}.* does not take structured random"):
            call()
