"""Parameters from a fit's result schema, the delta-method map over them, and the targets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ...errors import MethodError
from ...model.newdata import NewRows, new_rows, training_rows
from ...results.predict import select_terms, term_covariance
from .engines import Psi, Targets
from .mspe import ParamMap, gaussian_params, set_variance


def psi_hat(result, design) -> Psi:
    beta = result.fixed_effects.reindex(design.fixed_names).to_numpy(float)
    covs = [term_covariance(result, t) for t in design.random]
    disp = None
    if design.family.has_dispersion:
        name = design.family.dispersion_name
        if name not in result.dispersion:
            raise MethodError(
                f"the result has no dispersion {name!r} for the {design.family.name} family"
            )
        disp = float(result.dispersion[name])
    return Psi(beta, covs, disp)


def is_gaussian_identity(design) -> bool:
    fam = design.family
    return fam.name == "gaussian" and fam.link.name == "identity"


def param_map(result, design, psi: Psi, one_factor: bool) -> ParamMap | None:
    """The parameters in ``g2``/``g3`` and their sampling covariance: the fixed effects from
    ``result.vcov``; for a Gaussian response with the identity link and one grouping
    factor the variances and the residual variance with their inverse Fisher information;
    otherwise the covariance parameters ``result.vcov`` covers (``theta[...]`` as in lme4,
    or ``var(...)``; a dispersion is held fixed). None without ``result.vcov`` (a posterior
    covariance is not a sampling one)."""
    if result.vcov is None or result.vcov.kind == "posterior":
        return None
    V = result.vcov.matrix
    names = list(result.vcov.names)
    fixed = [str(n) for n in design.fixed_names]
    if not all(n in names for n in fixed) or len(names) != V.shape[0]:
        return None
    use = [names.index(n) for n in fixed]
    if one_factor and is_gaussian_identity(design):
        return gaussian_params(result, design, psi, V[np.ix_(use, use)])
    used_names = list(fixed)
    theta_names = result.info.get("theta_names") or []
    theta_pos = [_find(names, n) for n in theta_names]
    cov_factor = None
    if theta_names and all(i is not None for i in theta_pos) and not design.family.has_dispersion:
        from ..covariance import CovarianceFactor

        cov_factor = CovarianceFactor(design)
        theta0 = np.asarray(result.info["theta"], dtype=float)
        implied = cov_factor.covariances(theta0)
        if all(
            np.allclose(implied[t.name], c, rtol=1e-6, atol=1e-10)
            for t, c in zip(design.random, psi.covs, strict=True)
        ):
            use += theta_pos
            used_names += [names[i] for i in theta_pos]
        else:
            cov_factor = None
    diagonal = []  # (term position, column) of variances named "var(<component>)"
    if cov_factor is None:
        for i, t in enumerate(design.random):
            for j, comp in enumerate(t.component_names):
                if f"var({comp})" in names:
                    use.append(names.index(f"var({comp})"))
                    used_names.append(f"var({comp})")
                    diagonal.append((i, j))
    p = len(fixed)
    Vu = V[np.ix_(use, use)]

    def build(delta: np.ndarray) -> Psi:
        covs = psi.covs
        if cov_factor is not None:
            th = cov_factor.covariances(theta0 + delta[p:])
            covs = [th[t.name] for t in design.random]
        elif diagonal:
            covs = list(psi.covs)
            for (i, j), dv in zip(diagonal, delta[p:], strict=True):
                covs[i] = set_variance(covs[i], j, covs[i][j, j] + dv)  # correlations kept
        return Psi(psi.beta + delta[:p], covs, psi.dispersion)

    if cov_factor is not None:
        caps = 0.5 * np.abs(theta0)
    else:
        caps = np.array([0.5 * psi.covs[i][j, j] for i, j in diagonal])
    scale = np.concatenate([np.full(p, np.inf), caps])
    return ParamMap(used_names, Vu, p, np.zeros(len(use)), build, scale, "result.vcov")


def _find(names: list[str], theta_name: str) -> int | None:
    """Position of a covariance parameter in ``vcov_names`` (``"herd"`` or ``"theta[herd]"``)."""
    for cand in (theta_name, f"theta[{theta_name}]"):
        if cand in names:
            return names.index(cand)
    return None


# --------------------------------------------------------------------------------------
# targets


def row_targets(model, newdata, re_form) -> tuple[Targets, pd.DataFrame]:
    """One target per row (of ``newdata`` or the fit), on the ``type`` scale."""
    design = model.design
    terms = select_terms(design, re_form)
    if newdata is None:
        rows = training_rows(design, terms)
    else:
        rows = new_rows(design, model.data, newdata, terms)
    A = sp.identity(rows.n, format="csr")
    return Targets(rows, A, np.zeros(rows.n, bool)), pd.DataFrame(index=rows.labels)


def level_targets(model) -> tuple[Targets, pd.DataFrame]:
    """Per level of each grouping factor: each random effect (link scale) and the mean of
    the predicted response over the level's rows (``type`` scale, all random effects)."""
    design = model.design
    terms = design.random
    p = design.X.shape[1]
    n_re = sum(t.n_levels * t.n_columns for t in terms)
    # random-effect pseudo-rows: x = 0, z = a unit vector
    index = [np.zeros(n_re, int) for _ in terms]
    Xz = [np.zeros((n_re, t.n_columns)) for t in terms]
    desc = []
    r = 0
    for i, t in enumerate(terms):
        for lev in range(t.n_levels):
            for c in range(t.n_columns):
                for j, u in enumerate(terms):  # the same level of the same factor elsewhere
                    if u.group == t.group:
                        index[j][r] = lev
                index[i][r] = lev
                Xz[i][r, c] = 1.0
                desc.append((t.group, t.levels[lev], "random_effect", t.component_names[c]))
                r += 1
    # level means over the fit's rows
    groups = {}
    for t in terms:
        groups.setdefault(t.group, t)
    blocks = [sp.identity(n_re, format="csr")]
    for g, t in groups.items():
        counts = np.bincount(t.index, minlength=t.n_levels)
        M = sp.csr_matrix(
            (1.0 / counts[t.index], (t.index, np.arange(design.n))), shape=(t.n_levels, design.n)
        )
        blocks.append(M)
        desc += [(g, lev, "mean", "") for lev in t.levels]
    train = training_rows(design, terms)
    rows = NewRows(
        labels=pd.RangeIndex(n_re + design.n),
        X=np.vstack([np.zeros((n_re, p)), design.X]),
        offset=np.concatenate([np.zeros(n_re), design.offset]),
        terms=list(terms),
        index=[np.concatenate([a, b]) for a, b in zip(index, train.index, strict=True)],
        Xz=[np.vstack([a, b]) for a, b in zip(Xz, train.Xz, strict=True)],
        new_levels={},
        trials=None,
    )
    left = sp.hstack([blocks[0], sp.csr_matrix((n_re, design.n))])
    right = [sp.hstack([sp.csr_matrix((b.shape[0], n_re)), b]) for b in blocks[1:]]
    A = sp.vstack([left, *right], format="csr")
    link = np.concatenate([np.ones(n_re, bool), np.zeros(design.n, bool)])
    frame = pd.DataFrame(desc, columns=["group", "level", "quantity", "component"])
    return Targets(rows, A, link), frame
