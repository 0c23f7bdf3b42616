"""Leave-one-group-out of Bayesian fits: integrated importance sampling and exact refits.

For a grouping factor (``"Female"``) with levels ``j``, the integrated leave-one-group-out
(Vehtari, Mononen, Tolvanen, Sivula & Winther 2016; Merkle, Furr & Rabe-Hesketh 2019)
importance-samples, over the posterior draws ``theta^(s)``, the *marginal* likelihood of the
level's rows with the level's own random effects ``b_j`` integrated out over their population
distribution ``N(0, Sigma^(s))``::

    log p(y_j | theta^(s)) = log int prod_i p(y_ij | eta_ij^(s) + z_ij' b) N(b; 0, Sigma^(s)) db

where ``eta_ij^(s)`` holds the draw's fixed effects, offset and the *other* factors' random
effects at their draws (in a crossed design such as the salamander data, the ``Male``
effects of a female's rows), and the dispersion is the draw's. The rows' log-likelihood is the
family's (:meth:`bayesglmm.model.families.Family.loglik`, through ``eta_terms``).

The integral is computed per draw and level by adaptive Gauss-Hermite quadrature in the
standardized effects ``u`` (``b = L u``, ``L L' = Sigma``, so a variance drawn at zero is
harmless): the mode ``u_hat`` of ``sum_i log p(y_ij | .) - u'u / 2`` by damped Fisher-scoring
Newton steps, the curvature there (observed information; Fisher's where that is not
positive definite), and ``nodes`` points per dimension around the mode, as a product rule for
``q <= 2`` effects per level. For ``q > 2`` (three or more correlated or uncorrelated effects
of the factor) a product rule grows as ``nodes**q`` and the Laplace approximation (one node)
is used. All terms of the factor (``(1|g) + (0+x|g)``) are integrated together. Draws are
processed in chunks, and levels in blocks of whole levels, so that a working array holds
about :data:`CHUNK_ELEMENTS` numbers at most (one level with more rows than that allows is
a block of its own, one draw at a time).

Exact refits (:func:`group_refit_elpd`) fit the model again without a level's rows, by the
fit's method, options and priors, one :class:`~bayesglmm.analysis.study.Task` per level on
:func:`~bayesglmm.analysis.study.run_study`, and give the level's exact ``elpd_j = log mean_s
p(y_j | theta^(s)_{-j})`` with the same integrated likelihood under the refit's draws (the
left-out level's effects from the refit's ``Sigma``). :func:`bayesglmm.inference.loo.loo`
combines both.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from .._arviz import import_arviz
from ..errors import MethodError, OptionError

__all__ = [
    "CHUNK_ELEMENTS",
    "GH_NODES",
    "integrated_group_loglik",
    "group_refit_elpd",
    "integrated_level_loglik",
    "psis_mcse",
    "exact_mcse",
]

#: Gauss-Hermite nodes per dimension of a level's random effects (q <= 2)
GH_NODES = 25
#: about the largest number of float64 values of one working array (draws are chunked and
#: levels blocked to stay below)
CHUNK_ELEMENTS = 2_000_000
#: Newton iterations for the conditional mode, and their stopping tolerance on the step
_MAX_NEWTON = 50
_NEWTON_TOL = 1e-10


# ------------------------------------------------------------------------------------------
# the integral, vectorized over draws and levels


def _segment_sum(values: np.ndarray, order: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sums of ``values`` (draws, rows, ...) over the rows of each level (axis 1)."""
    return np.add.reduceat(values[:, order], starts, axis=1)


def _grid(nodes: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Product Gauss-Hermite grid (K, q) and its log weights (K,) for ``exp(-x'x)``."""
    x, w = np.polynomial.hermite.hermgauss(nodes)
    mesh = np.meshgrid(*([x] * q), indexing="ij")
    wmesh = np.meshgrid(*([np.log(w)] * q), indexing="ij")
    X = np.stack([m.ravel() for m in mesh], axis=-1)
    return X, np.sum([m.ravel() for m in wmesh], axis=0)


def integrated_level_loglik(
    family,
    y: np.ndarray,
    trials: np.ndarray | None,
    eta0: np.ndarray,
    Z: np.ndarray,
    index: np.ndarray,
    n_levels: int,
    root: np.ndarray,
    dispersion: np.ndarray | None = None,
    nodes: int = GH_NODES,
) -> np.ndarray:
    """Log marginal likelihood of each level's rows, its random effects integrated out.

    Parameters
    ----------
    family : Family
        The response family (its ``eta_terms`` and ``loglik``).
    y, trials : ndarray (n,)
        Response and binomial trials (None for other families).
    eta0 : ndarray (S, n)
        Linear predictor per draw without the integrated effects.
    Z : ndarray (n, q)
        The integrated effects' columns of each row.
    index : ndarray of int (n,)
        Level of each row, in ``0 .. n_levels - 1``.
    n_levels : int
    root : ndarray (S, q, q)
        A root ``L`` of each draw's covariance, ``L L' = Sigma``.
    dispersion : ndarray (S,), optional
        The family's dispersion per draw.
    nodes : int
        Gauss-Hermite nodes per dimension (``q <= 2``; ``q > 2`` uses the Laplace
        approximation, one node).

    Returns
    -------
    ndarray (S, n_levels)
        ``log p(y_j | theta^(s))``; 0 for a level without rows.
    """
    y = np.asarray(y, dtype=float)
    S, n = eta0.shape
    q = Z.shape[1]
    per_dim = nodes if q <= 2 else 1
    grid, logw = _grid(per_dim, q)
    K = grid.shape[0]
    width = max(K, q * q)
    constant = family.log_constant(y, trials)
    out = np.zeros((S, n_levels))
    for rows in _level_blocks(index, max(1, CHUNK_ELEMENTS // width)):
        idx = index[rows]
        order = np.argsort(idx, kind="stable")
        present, starts = np.unique(idx[order], return_index=True)
        chunk = max(1, CHUNK_ELEMENTS // (rows.size * width))
        tr = None if trials is None else trials[rows]
        for lo in range(0, S, chunk):
            sl = slice(lo, min(S, lo + chunk))
            disp = None if dispersion is None else np.asarray(dispersion[sl], float)[:, None]
            out[sl, present] = _integrate_chunk(
                family, y[rows], tr, constant[rows], eta0[sl][:, rows], Z[rows], idx, order,
                starts, present, present.size, root[sl], disp, grid, logw, q,
            )  # fmt: skip
    return out


def _level_blocks(index: np.ndarray, max_rows: int) -> list[np.ndarray]:
    """Row positions of consecutive blocks of whole levels, each of at most ``max_rows``
    rows where a level allows (a level with more rows is a block of its own)."""
    counts = np.bincount(index)
    if counts.sum() <= max_rows:
        return [np.arange(index.size)]
    blocks, current, size = [], [], 0
    for level, c in enumerate(counts):
        if c == 0:
            continue
        if current and size + c > max_rows:
            blocks.append(current)
            current, size = [], 0
        current.append(level)
        size += c
    blocks.append(current)
    return [np.flatnonzero(np.isin(index, b)) for b in blocks]


def _integrate_chunk(
    family, y, trials, constant, eta0, Z, index, order, starts, present, J, root, disp, grid,
    logw, q,
):  # fmt: skip
    Sc = eta0.shape[0]
    remap = np.full(int(index.max()) + 1, -1)
    remap[present] = np.arange(J)
    row_level = remap[index]
    Zt = np.einsum("na,sar->snr", Z, root)  # effects of the standardized u: z' L
    disp_kw = {} if disp is None else {"dispersion": disp}

    def terms(u, second=False):
        eta = eta0 + np.einsum("snr,snr->sn", Zt, u[:, row_level, :])
        return family.eta_terms(y, eta, trials, second=second, constant=constant, **disp_kw)

    def objective(t, u):
        return _segment_sum(t.loglik, order, starts) - 0.5 * np.sum(u * u, axis=-1)

    eye = np.eye(q)
    u = np.zeros((Sc, J, q))
    t = terms(u)
    obj = objective(t, u)
    for _ in range(_MAX_NEWTON):
        grad = _segment_sum(t.score[..., None] * Zt, order, starts) - u
        H = _segment_sum(t.W[..., None, None] * Zt[..., :, None] * Zt[..., None, :], order, starts)
        step = np.linalg.solve(H + eye, grad[..., None])[..., 0]
        scale = np.ones((Sc, J, 1))
        for _halving in range(30):  # damping: no step may lower the objective
            u_new = u + scale * step
            t_new = terms(u_new)
            obj_new = objective(t_new, u_new)
            worse = ~(obj_new >= obj - 1e-12 * np.abs(obj))
            if not worse.any():
                break
            scale[worse] *= 0.5
        u, t, obj = u_new, t_new, obj_new
        if np.max(np.abs(scale * step)) < _NEWTON_TOL:
            break
    t = terms(u, second=True)
    Zouter = Zt[..., :, None] * Zt[..., None, :]
    H_obs = _segment_sum(t.W_obs[..., None, None] * Zouter, order, starts) + eye
    H_fis = _segment_sum(t.W[..., None, None] * Zouter, order, starts) + eye
    ok = np.all(np.linalg.eigvalsh(H_obs) > 1e-10, axis=-1)
    H = np.where(ok[..., None, None], H_obs, H_fis)
    R = np.linalg.cholesky(H)  # H = R R'; nodes u = u_hat + sqrt(2) R^-T x
    Rt_inv = np.linalg.inv(np.swapaxes(R, -1, -2))
    log_det_A = -np.sum(np.log(np.diagonal(R, axis1=-2, axis2=-1)), axis=-1)
    U = u[:, :, None, :] + np.sqrt(2.0) * np.einsum("sjab,kb->sjka", Rt_inv, grid)
    # linear predictor at every node: (Sc, K, n), rows last so y and trials broadcast
    eta = eta0[:, None, :] + np.einsum("snr,sknr->skn", Zt, U[:, row_level, :, :].swapaxes(1, 2))
    kw = {} if disp is None else {"dispersion": disp[:, :, None]}
    ll = family.loglik(y, trials=trials, eta=eta, constant=constant, **kw)
    ll_level = np.add.reduceat(ll[:, :, order], starts, axis=2).swapaxes(1, 2)  # (Sc, J, K)
    terms_k = ll_level - 0.5 * np.sum(U * U, axis=-1) + np.sum(grid * grid, axis=-1) + logw
    return logsumexp(terms_k, axis=-1) + log_det_A - 0.5 * q * np.log(np.pi)


# ------------------------------------------------------------------------------------------
# the draws of a fit


class _Holder:
    """What ``results.predict``'s covariance reader takes from a result: its idata."""

    def __init__(self, idata):
        self.idata = idata


def group_terms(design, group: str, caller: str = "loo") -> list:
    """The random-effect terms of grouping factor ``group``, or one clear error."""
    terms = [t for t in design.random if t.group == group]
    if not terms:
        known = sorted({t.group for t in design.random})
        raise MethodError(
            f"{caller}: group={group!r} is not a grouping factor of the model; it has {known}"
        )
    return terms


def _fixed_draws(idata, design) -> np.ndarray:
    from ..results.predict import posterior_array

    post = idata.posterior
    S = int(post.sizes["chain"] * post.sizes["draw"])
    cols = []
    for term, sl in design.fixed_terms.items():
        arr = posterior_array(idata, term)
        cols.append(arr.reshape(S, sl.stop - sl.start))
    return np.hstack(cols) if cols else np.zeros((S, 0))


def _dispersion_draws(idata, family) -> np.ndarray | None:
    from ..results.draws import variable_draws

    name = family.dispersion_name
    if name is None:
        return None
    const = idata.constant_data if "constant_data" in idata.groups() else None
    return variable_draws(idata.posterior, name, const).ravel()


def _group_root(idata, design, terms) -> np.ndarray:
    """Block-diagonal root ``L`` (S, q, q) of the covariance of the group's effects."""
    from ..results.predict import _covariance_draws, _psd_root

    roots = [_psd_root(_covariance_draws(_Holder(idata), design, t)) for t in terms]
    S = roots[0].shape[0]
    q = sum(r.shape[1] for r in roots)
    L = np.zeros((S, q, q))
    at = 0
    for r in roots:
        k = r.shape[1]
        L[:, at : at + k, at : at + k] = r
        at += k
    return L


class _RowsEta:
    """Draws of the rows' linear predictor without the terms of ``group``, by slices of draws.

    ``rows`` holds the rows' fixed-effect matrix ``X`` (columns named ``fixed_names``),
    ``offset`` and, per other term (by name), its level names and columns; ``design`` is the
    design of the fit whose draws ``idata`` holds. A level unseen in that design (its rows
    were all left out) gets one effect per draw from ``N(0, Sigma^(s))``, drawn from ``rng``
    slice after slice (the same values whatever the slices).
    """

    def __init__(self, idata, design, rows: dict, group: str, rng):
        from ..results.predict import _covariance_draws, _effect_draws, _psd_root

        if [str(n) for n in design.fixed_names] != list(rows["fixed_names"]):
            raise MethodError(
                f"the fixed effects of the refit ({list(design.fixed_names)}) are not the "
                f"model's ({list(rows['fixed_names'])}): leaving the level out removed a column"
            )
        self.beta = _fixed_draws(idata, design)
        self.X, self.offset, self.rng = rows["X"], rows["offset"], rng
        self.terms = []
        for t in design.random:
            if t.group == group:
                continue
            names, Xz = rows["terms"][t.name]
            pos = {lv: i for i, lv in enumerate(t.levels)}
            idx = np.array([pos.get(v, -1) for v in names], dtype=np.int64)
            seen = idx >= 0
            unseen = codes = root = None
            if (~seen).any():
                unseen, codes = np.unique(np.asarray(names)[~seen], return_inverse=True)
                root = _psd_root(_covariance_draws(_Holder(idata), design, t))
            self.terms.append((_effect_draws(idata, t), idx, seen, Xz, unseen, codes, root))

    @property
    def n_draws(self) -> int:
        return self.beta.shape[0]

    def __call__(self, sl: slice) -> np.ndarray:
        eta = self.beta[sl] @ self.X.T + self.offset[None, :]
        for B, idx, seen, Xz, unseen, codes, root in self.terms:
            eta[:, seen] += np.einsum("ij,sij->si", Xz[seen], B[sl][:, idx[seen], :])
            if unseen is not None:
                z = self.rng.standard_normal((eta.shape[0], unseen.size, B.shape[2]))
                b_new = np.einsum("sab,slb->sla", root[sl], z)
                eta[:, ~seen] += np.einsum("ij,sij->si", Xz[~seen], b_new[:, codes, :])
        return eta


def _rows_of(design, mask: np.ndarray | None = None) -> dict:
    """The rows' arrays that :class:`_RowsEta` and the integral take (all rows: None)."""
    sel = np.ones(design.n, dtype=bool) if mask is None else mask
    return {
        "fixed_names": [str(n) for n in design.fixed_names],
        "X": np.asarray(design.X[sel], dtype=float),
        "offset": np.asarray(design.offset[sel], dtype=float),
        "y": np.asarray(design.y[sel], dtype=float),
        "trials": None if design.trials is None else np.asarray(design.trials[sel], dtype=float),
        "terms": {
            t.name: (np.asarray(t.levels, dtype=object)[t.index[sel]].astype(str), t.X[sel])
            for t in design.random
        },
    }


def _integrated_matrix(idata, design, group: str, nodes: int, rows=None, rng=None):
    """(S, n_levels) integrated log-likelihood of the fit's own rows (``rows`` None) or of
    the given rows as one level."""
    terms = group_terms(design, group)
    family = design.family
    own = rows is None
    if own:
        rows = _rows_of(design)
        index = terms[0].index
        n_levels = terms[0].n_levels
        Z = np.hstack([t.X for t in terms])
    else:
        index = np.zeros(rows["y"].size, dtype=np.int64)
        n_levels = 1
        Z = rows["Z"]
    eta0 = _RowsEta(idata, design, rows, group, rng)
    root = _group_root(idata, design, terms)
    dispersion = _dispersion_draws(idata, family)
    S, n, q = eta0.n_draws, Z.shape[0], Z.shape[1]
    chunk = max(1, CHUNK_ELEMENTS // max(1, n * (nodes**q if q <= 2 else 1)))
    out = np.empty((S, n_levels))
    for lo in range(0, S, chunk):  # the rows' linear predictor of a slice of draws at a time
        sl = slice(lo, min(S, lo + chunk))
        out[sl] = integrated_level_loglik(
            family, rows["y"], rows["trials"], eta0(sl), Z, index, n_levels, root[sl],
            None if dispersion is None else dispersion[sl], nodes,
        )  # fmt: skip
    return out


def integrated_group_loglik(fit, group: str, nodes: int = GH_NODES):
    """Integrated log-likelihood of each level of ``group`` per posterior draw.

    Parameters
    ----------
    fit : FitResult
        A Bayesian fit holding its model (``fit.model``).
    group : str
        A grouping factor of the model.
    nodes : int
        Gauss-Hermite nodes per dimension (module notes; ``q > 2``: Laplace).

    Returns
    -------
    xarray.DataArray
        Dims ``(chain, draw, group)``: ``log p(y_j | theta^(s))`` with the level's random
        effects integrated out over ``N(0, Sigma^(s))`` (module notes), the other factors'
        effects, fixed effects and dispersion at their draws.
    """
    import xarray as xr

    design = _design_of(fit, group)
    nodes = _check_nodes(nodes)
    post = fit.idata.posterior
    values = _integrated_matrix(fit.idata, design, group, nodes)
    levels = [str(v) for v in group_terms(design, group)[0].levels]
    shape = (post.sizes["chain"], post.sizes["draw"], len(levels))
    return xr.DataArray(
        values.reshape(shape),
        dims=("chain", "draw", group),
        coords={"chain": post.chain.values, "draw": post.draw.values, group: levels},
        name="integrated_loglik",
    )


def _check_nodes(nodes) -> int:
    if isinstance(nodes, bool) or not isinstance(nodes, int | np.integer) or nodes < 1:
        raise OptionError(f"nodes must be a positive integer, got {nodes!r}")
    return int(nodes)


def _design_of(fit, group: str, caller: str = "loo"):
    if getattr(fit, "kind", None) != "bayesian" or getattr(fit, "idata", None) is None:
        raise MethodError(
            f"{caller}: the fit is a {getattr(fit, 'kind', type(fit).__name__)} fit with no "
            "posterior draws; it needs a Bayesian fit (method='nuts' or 'gibbs')"
        )
    design = getattr(getattr(fit, "model", None), "design", None)
    if design is None:
        raise MethodError(
            f"{caller}: group={group!r} needs the fit's model and data (a fit read from a file "
            "has neither); refit the model, or call loo without group"
        )
    group_terms(design, group, caller)
    return design


# ------------------------------------------------------------------------------------------
# Monte Carlo errors


def _ess(values: np.ndarray) -> float:
    """Effective sample size (ArviZ, bulk) of draws shaped (chain, draw)."""
    az = import_arviz()
    if values.shape[1] < 4 or np.ptp(values) == 0:
        return float(values.size)
    ess = float(az.ess(np.asarray(values, dtype=float)))
    return min(max(ess, 1.0), float(values.size)) if np.isfinite(ess) else float(values.size)


def exact_mcse(loglik: np.ndarray) -> float:
    """Monte Carlo standard error of ``log mean exp(loglik)`` over draws (chain, draw).

    Delta method on the mean of ``p = exp(loglik)``: ``sd(p) / (sqrt(ESS(p)) mean(p))``.
    """
    p = np.exp(loglik - loglik.max())
    return float(np.std(p) / (np.sqrt(_ess(p)) * np.mean(p)))


def psis_mcse(loglik: np.ndarray) -> float:
    """Monte Carlo standard error of the PSIS estimate of ``elpd_j`` from draws (chain, draw).

    As the ``loo`` R package: with the normalized Pareto-smoothed weights ``w`` and
    ``p = exp(loglik)``, ``E = sum w p``, ``var = sum w^2 (p - E)^2 / r_eff`` with ``r_eff``
    the relative efficiency of ``p`` (ESS over draws); on the log scale by the delta method.
    """
    az = import_arviz()
    flat = loglik.ravel()
    p = np.exp(flat - flat.max())
    r_eff = _ess(np.exp(loglik - loglik.max())) / flat.size
    lw, _ = az.psislw(-flat, reff=r_eff)  # samples on the last axis
    w = np.exp(np.asarray(lw).ravel())
    E = np.sum(w * p)
    return float(np.sqrt(np.sum(w**2 * (p - E) ** 2) / r_eff) / E)


# ------------------------------------------------------------------------------------------
# exact refits


def refit_without_level(
    model_args: dict,
    method: str,
    options: dict,
    group: str,
    level: str,
    nodes: int,
    seed: int,
) -> dict:
    """Refit without the rows of ``level`` and integrate them under the refit's draws.

    Runs on a study worker (:func:`~bayesglmm.analysis.study.run_study`). Returns
    ``loglik`` (chain, draw) of the left-out rows' integrated likelihood, ``elpd``
    (``log mean exp``), ``mcse``, ``n_rows``, ``max_rhat`` of the refit's parameters and
    ``warnings`` (the texts of the warnings the refit raised, kept here instead of printed).
    """
    from ..glmm import GLMM

    fit_ss, draw_ss = np.random.SeedSequence(seed).spawn(2)
    data = model_args["data"]
    keep = ~model_args["left_out"]
    model = GLMM(model_args["formula"], data.iloc[np.flatnonzero(keep)], family=model_args[
        "family"], link=model_args["link"])  # fmt: skip
    model.priors = model_args["priors"]  # the model's priors, not defaults refitted to the rest
    opts = dict(options)
    opts["random_seed"] = int(fit_ss.generate_state(1, np.uint64)[0] >> np.uint64(1))
    with warnings.catch_warnings(record=True) as caught:  # reported in the refits' table
        warnings.simplefilter("always")
        refit = model.fit(method, **opts)
    texts = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    rows = model_args["rows"]
    rng = np.random.default_rng(draw_ss)
    ll = _integrated_matrix(refit.idata, model.design, group, nodes, rows=rows, rng=rng)[:, 0]
    post = refit.idata.posterior
    ll = ll.reshape(post.sizes["chain"], post.sizes["draw"])
    rhat = refit.table["r_hat"].max() if "r_hat" in getattr(refit, "table", {}) else np.nan
    return {
        "loglik": ll,
        "elpd": float(logsumexp(ll) - np.log(ll.size)),
        "mcse": exact_mcse(ll),
        "n_rows": int(rows["y"].size),
        "max_rhat": float(rhat),
        "warnings": "; ".join(texts) if texts else None,
    }


def _model_args(fit, design, group: str, level: str) -> dict:
    """What a refit without ``level`` needs: the data of the fit's rows, the rows left out."""
    model = fit.model
    terms = group_terms(design, group)
    levels = [str(v) for v in terms[0].levels]
    left_out = terms[0].index == levels.index(level)
    data = model.data
    if len(data) != design.n:  # rows dropped for missing values: the design's rows
        if not data.index.is_unique:
            raise MethodError(
                "loo: the model dropped rows of a data frame whose index is not unique; "
                "refit it on data with a unique index to refit without a level"
            )
        data = data.loc[design.row_labels]
    rows = _rows_of(design, left_out)
    rows["Z"] = np.hstack([t.X[left_out] for t in terms])
    return {
        "formula": model.formula,
        "data": data,
        "family": design.family.name,
        "link": design.family.link.name,
        "priors": model.priors,
        "left_out": left_out,
        "rows": rows,
    }


def refit_options(fit) -> tuple[str, dict]:
    """The fit's method and the options a refit repeats (its seed, progress bar and
    pointwise log-likelihood aside)."""
    from ..options import known_options

    method = fit.method
    given = (fit.info or {}).get("options") or {}
    keep = set(known_options(method)) - {"progressbar", "random_seed"}
    options = {k: v for k, v in given.items() if k in keep and v is not None}
    if "progressbar" in known_options(method):
        options["progressbar"] = False
    if "log_likelihood" in known_options(method):  # the refit's own pointwise values: unused
        options["log_likelihood"] = False
    return method, options


def _default_seed(fit, random_seed):
    if random_seed is not None:
        return random_seed
    given = ((fit.info or {}).get("options") or {}).get("random_seed")
    return int(given) if isinstance(given, int | np.integer) else None


def group_refit_elpd(
    fit,
    group: str,
    levels,
    nodes: int = GH_NODES,
    random_seed: int | None = None,
    store=None,
    client=None,
    max_workers: int | None = None,
    progressbar: bool | None = None,
):
    """Exact leave-one-group-out ELPD of some levels, by refitting without each.

    Parameters
    ----------
    fit : FitResult
        A Bayesian fit holding its model; each refit repeats its method, options and
        priors on the data without the level's rows.
    group : str
        A grouping factor of the model.
    levels : list of str
        Levels to leave out, one refit each.
    nodes : int
        Gauss-Hermite nodes per dimension of the integrated likelihood (module notes).
    random_seed : int, optional
        Seed of the study; each refit's seed derives from it and the level
        (:func:`~bayesglmm.analysis.study.derive_seed`). None: the fit's own
        ``random_seed`` when it had one, else fresh entropy.
    store, client, max_workers, progressbar
        As :func:`~bayesglmm.analysis.study.run_study` (a store resumes the refits).

    Returns
    -------
    pandas.DataFrame
        Indexed by level: ``elpd`` (``log mean_s p(y_j | theta^(s)_{-j})``, the level's
        random effects integrated out under each refit draw's covariance), ``mcse``,
        ``n_rows``, ``max_rhat``, ``warnings`` (texts of the refit's warnings, such as
        sampling diagnostics), ``error`` (text of a failed refit, whose other columns are
        NaN). ``.attrs["loglik"]``: level -> the (chain, draw) integrated values.
    """
    from ..analysis.study import Task, run_study

    design = _design_of(fit, group, "group_refit_elpd")
    nodes = _check_nodes(nodes)
    known = [str(v) for v in group_terms(design, group)[0].levels]
    if isinstance(levels, str) or not hasattr(levels, "__iter__"):
        levels = [levels]
    levels = [str(v) for v in levels]
    bad = [v for v in levels if v not in known]
    if bad:
        raise OptionError(f"levels: {bad} are not levels of {group!r}")
    method, options = refit_options(fit)
    tasks = [
        Task(
            f"{group}={level}",
            refit_without_level,
            {
                "model_args": _model_args(fit, design, group, level),
                "method": method,
                "options": options,
                "group": group,
                "level": level,
                "nodes": nodes,
            },
        )
        for level in levels
    ]
    study = run_study(
        tasks,
        store=store,
        client=client,
        max_workers=max_workers,
        random_seed=_default_seed(fit, random_seed),
        progressbar=progressbar,
    )
    rows, logliks = [], {}
    for level in levels:
        key = f"{group}={level}"
        value = study.results.get(key)
        if value is None:
            err = study.table.loc[study.table["key"] == key, "error"]
            rows.append({"level": level, "error": str(err.iloc[0]) if len(err) else "failed"})
            continue
        logliks[level] = value["loglik"]
        rows.append({"level": level, **{k: v for k, v in value.items() if k != "loglik"}})
        rows[-1]["error"] = None
    table = pd.DataFrame(rows).set_index("level")
    for col in ("elpd", "mcse", "n_rows", "max_rhat", "warnings"):
        if col not in table:
            table[col] = np.nan if col != "warnings" else None
    table = table[["elpd", "mcse", "n_rows", "max_rhat", "warnings", "error"]]
    table.attrs["loglik"] = logliks
    table.attrs["random_seed"] = study.random_seed
    return table
