"""Declarative model specs (models/*.toml): loading, building on the real data, bad files."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest

from bayesglmm import priors
from bayesglmm.analysis.specs import MODELS_DIR, available_specs, load_spec
from bayesglmm.errors import SpecError

SHIPPED = ["cbpp", "mouse_litters", "salamander", "seeds"]

#: (spec, formula, n rows, fixed-effect names, variance components) of the shipped models
EXPECTED = {
    "salamander": (
        "Mate ~ 0 + Cross + (1|Female) + (1|Male)",
        360,
        ["Cross[RR]", "Cross[RW]", "Cross[WR]", "Cross[WW]"],
        ["Female", "Male"],
    ),
    "cbpp": (
        "cbind(incidence, size - incidence) ~ period + (1|herd)",
        56,
        ["Intercept", "period[2]", "period[3]", "period[4]"],
        ["herd"],
    ),
    "seeds": (
        "cbind(germ, n - germ) ~ x1 * x2 + (1|plate)",
        21,
        ["Intercept", "x1", "x2", "x1:x2"],
        ["plate"],
    ),
    "mouse_litters": ("cbind(dead, survived) ~ 1 + (1|litter)", 523, ["Intercept"], ["litter"]),
}


def _write(tmp_path, text: str, name: str = "model.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_shipped_specs_are_found_beside_the_package():
    assert MODELS_DIR.is_dir()
    assert set(SHIPPED) <= set(available_specs())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_spec_builds_on_the_real_data(name, request):
    request.getfixturevalue(name)  # real data present (the packaged copy)
    spec = load_spec(name)
    formula, n, fixed, components = EXPECTED[name]
    assert spec.dataset == name and spec.formula == formula and spec.family == "binomial"
    assert spec.description
    model = spec.build()
    assert model.design.n == n
    assert model.design.fixed_names == fixed
    assert model.design.component_names == components
    # every prior the file sets is the one the model uses
    for key, prior in spec.priors.items():
        assert key in model.priors.user_keys
        used = dict(model.priors.all())
        assert prior in used.values(), (key, prior)
    # reference values name parameters the model has
    for ref in spec.references:
        assert ref.source and ref.method
        assert set(ref.fixed_effects) <= set(fixed), ref.method
        assert set(ref.variance_components) <= set(components), ref.method


def test_mouse_litters_spec_is_one_intercept_per_litter(mouse_litters):
    model = load_spec("mouse_litters").build()
    (term,) = model.design.random
    assert term.n_levels == len(mouse_litters) == 523
    assert model.design.y.sum() == 614  # dead of 6879 implants (bayesglmm/data/README.md)
    assert model.design.trials.sum() == 6879


def test_spec_by_path_and_by_env_folder(tmp_path, monkeypatch, salamander):
    path = _write(
        tmp_path,
        """
        dataset = "salamander"
        formula = "Mate ~ 0 + Cross + (1|Female) + (1|Male)"
        [priors.Female]
        dist = "HalfStudentT"
        nu = 4
        sigma = 1.5
        [priors.Male]
        dist = "InverseGamma"
        alpha = 2
        beta = 1
        [priors.Cross]
        dist = "Normal"
        sigma = [1.0, 2.0, 3.0, 4.0]
    """,
        "mysal.toml",
    )
    spec = load_spec(path)
    assert spec.name == "mysal" and spec.path == path
    assert spec.priors["Female"] == priors.HalfStudentT(nu=4.0, sigma=1.5)
    assert spec.priors["Male"] == priors.InverseGamma(alpha=2.0, beta=1.0)
    model = spec.build(data=salamander)
    assert model.priors.random_sd["1|Female"] == [priors.HalfStudentT(nu=4.0, sigma=1.5)]
    assert model.priors.random_sd["1|Male"][0].scale == "variance"
    np.testing.assert_allclose(model.priors.fixed["Cross"].sigma, [1.0, 2.0, 3.0, 4.0])

    monkeypatch.setenv("BAYESGLMM_MODELS", str(tmp_path))
    assert available_specs()[0] == "mysal"
    assert load_spec("mysal").priors == spec.priors


def test_number_is_a_fixed_prior_and_lkj_takes_an_sd_prior(tmp_path):
    path = _write(
        tmp_path,
        """
        dataset = "cbpp"
        formula = "cbind(incidence, size - incidence) ~ period + (1 + period | herd)"
        [priors]
        herd = 0.5
        [priors."1+period|herd"]
        dist = "LKJ"
        eta = 2
        sd = { dist = "HalfNormal", sigma = 1.0 }
    """,
    )
    spec = load_spec(path)
    assert spec.priors["herd"] == priors.Fixed(0.5)
    assert spec.priors["1+period|herd"] == priors.LKJ(eta=2.0, sd=priors.HalfNormal(1.0))


def test_compare_puts_a_fit_beside_the_references():
    from bayesglmm.results.result import FitResult

    spec = load_spec("salamander")
    names = ["Cross[RR]", "Cross[RW]", "Cross[WR]", "Cross[WW]"]
    fit = FitResult(
        method="laplace",
        formula=spec.formula,
        family="binomial",
        link="logit",
        fixed_effects=pd.Series([1.0, 0.3, -1.9, 1.0], index=names),
        fixed_effects_se=pd.Series(0.4, index=names),
        variance_components=pd.Series([1.1, 1.0], index=["Female", "Male"]),
        loglik=-209.3,
    )
    table = spec.compare(fit, label="mine")
    assert list(table.columns) == ["mine"] + [r.method for r in spec.references]
    assert list(table.index) == names + ["var(Female)", "var(Male)", "logLik"]
    assert table.loc["Cross[WR]", "Laplace (glmer)"] == pytest.approx(-1.895956)
    assert table.loc["var(Male)", "mine"] == 1.0


# ------------------------------------------------------------------------------------------
# bad spec files: SpecError naming the file and the key

GOOD = 'dataset = "cbpp"\nformula = "cbind(incidence, size - incidence) ~ period + (1|herd)"\n'

BAD = [
    ("dataset = \n", "not valid TOML"),
    (GOOD + "formla = 'y ~ x'\n", "'formla'"),
    ('dataset = "cbpp"\n', "missing required key 'formula'"),
    ('dataset = "nope"\nformula = "y ~ 1 + (1|g)"\n', "key 'dataset'"),
    (GOOD + 'family = "binomal"\n', "key 'family'"),
    (GOOD + 'link = "sqrt"\n', "key 'link'"),
    (GOOD + 'family = "poisson"\nlink = "logit"\n', "key 'link'"),
    ('dataset = "cbpp"\nformula = "incidence ~ period + (1|herd"\n', "key 'formula'"),
    ('dataset = "cbpp"\nformula = 3\n', "key 'formula' must be a string"),
    (GOOD + "[priors.herd]\nsigma = 1\n", "key 'priors.herd.dist': missing"),
    (GOOD + '[priors.herd]\ndist = "HalfNormall"\n', "key 'priors.herd.dist': 'HalfNormall'"),
    (GOOD + '[priors.herd]\ndist = "HalfNormal"\nsgima = 1\n', "key 'priors.herd.sgima'"),
    (GOOD + '[priors.herd]\ndist = "HalfNormal"\nsigma = "big"\n', "key 'priors.herd.sigma'"),
    (GOOD + "priors = 3\n", "key 'priors'"),
    (GOOD + '[priors]\nherd = "wide"\n', "key 'priors.herd'"),
    (GOOD + '[[references]]\nmethod = "x"\n', "key 'references[0].source'"),
    (
        GOOD + '[[references]]\nmethod = "x"\nsource = "y"\nfixed_effects = { a = "1" }\n',
        "key 'references[0].fixed_effects.a'",
    ),
]


@pytest.mark.parametrize(("text", "needle"), BAD)
def test_bad_spec_names_file_and_key(tmp_path, text, needle):
    path = _write(tmp_path, text, "bad.toml")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(path) in str(err.value)
    assert needle in str(err.value)


def test_prior_for_a_parameter_the_model_lacks_is_caught_at_build(tmp_path, cbpp):
    path = _write(tmp_path, GOOD + '[priors.Female]\ndist = "HalfNormal"\nsigma = 1\n')
    spec = load_spec(path)
    with pytest.raises(SpecError) as err:
        spec.build(data=cbpp)
    msg = str(err.value)
    assert str(path) in msg and "'priors'" in msg and "'Female'" in msg


def test_unknown_spec_name_lists_the_available_ones(tmp_path):
    with pytest.raises(SpecError, match="no model spec named 'salamandr'.*salamander"):
        load_spec("salamandr")
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "missing.toml")
