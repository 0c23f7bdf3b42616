"""Parametric-bootstrap MSPE of the empirical best predictor on the study runner.

Each replicate draws random effects ``b*`` and a response ``y*`` from the fitted model
(``psi-hat``), refits it by the original method and options (``psi-hat*``) and returns,
per target: the true ``zeta*`` (at ``b*``), the EBP ``zeta-hat* = E_{psi-hat*}(zeta | y*)``,
the best predictor ``zeta-tilde* = E_{psi-hat}(zeta | y*)`` and both conditional variances.
The estimators (Butar & Lahiri 2003; Hall & Maiti 2006, section 2, single-level with the
bias correction of ``g1``):

.. math::

    \\text{naive} = E^*(\\hat\\zeta^* - \\zeta^*)^2, \\qquad
    \\text{corrected} = g_1(\\hat\\psi) - E^*\\{g_1(y^*, \\hat\\psi^*) - g_1(y^*, \\hat\\psi)\\}
      + E^*(\\hat\\zeta^* - \\tilde\\zeta^*)^2 .
"""

from __future__ import annotations

import warnings

import numpy as np

from .engines import Importance, Quadrature


def replicate(spec: dict, seed: int) -> dict:
    """One bootstrap replicate (runs on a study worker)."""
    from ...model.simulate import simulate
    from . import _targets
    from .params import psi_hat

    data_ss, fit_ss, is_ss = np.random.SeedSequence(seed).spawn(3)
    sim = simulate(
        spec["formula"],
        spec["data"],
        family=spec["family"],
        link=spec["link"],
        random_seed=int(data_ss.generate_state(1, np.uint64)[0] >> np.uint64(1)),
        **spec["truth"],
    )
    model = spec["model_class"](spec["formula"], sim, family=spec["family"], link=spec["link"])
    opts = dict(spec["fit_options"])
    if spec["seeded"]:
        opts["random_seed"] = int(fit_ss.generate_state(1, np.uint64)[0] >> np.uint64(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(spec["method"], **opts)
    design = model.design
    targets, _ = _targets(model, spec["newdata"], spec["re_form"], spec["by"])
    psi_star = psi_hat(fit, design)
    psi0 = spec["psi"]
    h = design.family.link.linkinv if spec["type"] == "response" else (lambda e: e)
    if spec["method_ebp"] == "quadrature":
        eng = Quadrature(design, targets, psi0, spec["n_quad"])
        eng_star = Quadrature(design, targets, psi_star, spec["n_quad"])
        b = np.hstack(
            [sim.attrs["truth"]["random_effects"][t.name].to_numpy() for t in design.random]
        )
    else:
        rng = np.random.default_rng(is_ss)
        eng = Importance(design, targets, psi0, spec["n_draws"], rng)
        eng_star = Importance(design, targets, psi_star, spec["n_draws"], rng)
        b = np.concatenate(
            [sim.attrs["truth"]["random_effects"][t.name].to_numpy().ravel() for t in design.random]
        )
    m0, s0, _ = eng.moments(psi0, h)
    m1, s1, _ = eng_star.moments(psi_star, h)
    return {
        "truth": eng.at(psi0, h, b),
        "ebp": m1,
        "bp": m0,
        "g1_star": s1 - m1**2,
        "g1_psi": s0 - m0**2,
    }


def combine(reps: list, g1: np.ndarray):
    """(corrected, naive) MSPE from the replicates' values (module docstring)."""
    truth, ebp, bp, g1s, g1p = (
        np.array([r[k] for r in reps]) for k in ("truth", "ebp", "bp", "g1_star", "g1_psi")
    )
    naive = ((ebp - truth) ** 2).mean(0)
    corrected = g1 - (g1s - g1p).mean(0) + ((ebp - bp) ** 2).mean(0)
    return np.clip(corrected, 0.0, None), naive
