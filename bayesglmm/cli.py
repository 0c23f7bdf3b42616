"""The ``bayesglmm`` command: fit a model from a spec or a formula, run the demo, list things.

A thin layer over the API: every command is a few calls to :class:`~bayesglmm.GLMM`,
:mod:`bayesglmm.specs`, :mod:`bayesglmm.demo` and :mod:`bayesglmm.plots`. Errors in the
user's input (bad flags or options, unknown method or spec, missing data file, bad formula or
column) end the command with one line ``bayesglmm: error: ...`` on stderr and exit status 2;
an unexpected failure also prints one line, with exit status 1 (``--traceback`` shows the
full trace).

Examples
--------
.. code-block:: console

    $ bayesglmm demo
    $ bayesglmm fit salamander --draws 2000 --out results
    $ bayesglmm fit "y ~ x + (1|g)" --data my.csv --family poisson --method nuts
    $ bayesglmm compare salamander --methods laplace,pql,nuts --out results
    $ bayesglmm test salamander --term "(1|Female)" --method lrt
    $ bayesglmm test cbpp --term "(1|herd)" --method bootstrap -t n_boot=200 --seed 3
    $ bayesglmm specs
    $ bayesglmm datasets
"""

from __future__ import annotations

import argparse
import ast
import sys
import tempfile
import warnings
from pathlib import Path

from .errors import BayesGLMMError

#: exit status for a mistake in the user's input (argparse's own for bad flags)
EXIT_ERROR = 2
#: exit status for an unexpected failure (a bug: please report it with --traceback)
EXIT_FAILURE = 1
#: the seed of ``fit`` and ``demo`` when --seed is not given (printed with the fit)
DEFAULT_SEED = 1
#: the tests of ``bayesglmm test`` (:func:`bayesglmm.inference.variance_tests.test_variance`)
TEST_METHODS = ("lrt", "score", "rlrt", "bootstrap")
#: ``--nuts-sampler`` help: what the default really does
NUTS_SAMPLER_HELP = (
    "NUTS backend: auto (default: bayesglmm's compiled density sampled with nutpie when the "
    "model qualifies, i.e. binomial-logit, Poisson-log or Gaussian with default prior "
    "families and uncorrelated random effects; else PyMC's own NUTS), compiled, pymc, "
    "nutpie, numpyro, blackjax"
)


def methods_help() -> str:
    """The methods and their options, from the method records (the ``fit --help`` epilog)."""
    from .methods import available_methods, get_record

    lines = ["methods:"]
    for name in available_methods():
        r = get_record(name)
        lines.append(f"  {name:<8} {r.summary}")
        lines.append(f"  {'':<8} applies to: {r.applies_to}")
        lines.append(f"  {'':<8} options: {', '.join(r.options)}")
    return "\n".join(lines)


class CLIError(BayesGLMMError):
    """A command-line argument is wrong (e.g. a formula without ``--data``)."""


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line, ``bayesglmm: error: ...``, exit status 2."""

    def error(self, message: str):
        first = message.strip().splitlines()[0] if message.strip() else "bad arguments"
        self.exit(EXIT_ERROR, f"bayesglmm: error: {first} (see: {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    from .methods import available_methods

    p = _Parser(
        prog="bayesglmm",
        description="Generalized linear mixed models, Bayesian first (lme4 formulas to PyMC).",
    )
    p.add_argument(
        "--traceback", action="store_true", help="show the full Python traceback on errors"
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def sampling(q: argparse.ArgumentParser, defaults: bool) -> None:
        d = (lambda v: v) if defaults else (lambda v: None)
        q.add_argument("--draws", type=int, default=d(1000), help="draws per chain")
        q.add_argument("--tune", type=int, default=d(1000), help="tuning steps per chain")
        q.add_argument("--chains", type=int, default=d(4))
        q.add_argument("--cores", type=int, default=None, help="parallel chains (default: all)")
        q.add_argument(
            "--seed",
            type=int,
            default=d(DEFAULT_SEED),
            help=f"random seed of a sampling method (default: {DEFAULT_SEED}, printed)",
        )
        q.add_argument("--nuts-sampler", default=None, help=NUTS_SAMPLER_HELP)
        q.add_argument(
            "--no-progress",
            action="store_true",
            help="no progress bars (default: bars for sampling and for iterations that run "
            "beyond a second, on a terminal or in a pipe)",
        )
        q.add_argument("--no-plots", action="store_true", help="do not write PNG plots")

    f = sub.add_parser(
        "fit",
        help="fit a model from models/ or a formula plus a CSV file",
        description="Fit SPEC (a name from `bayesglmm specs` or a .toml file) "
        "or FORMULA (lme4 syntax, with --data).",
        epilog=methods_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    f.add_argument("model", metavar="SPEC_OR_FORMULA")
    f.add_argument("--data", metavar="CSV", help="data for a formula (or to replace a spec's)")
    f.add_argument("--family", help="binomial (default), poisson, gaussian, negative_binomial")
    f.add_argument("--link", help="logit, probit, cloglog, log, identity (default: R's)")
    f.add_argument(
        "--method",
        default="nuts",
        help=f"estimation method: {', '.join(available_methods())} (default: nuts)",
    )
    f.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other option of the method, e.g. -o target_accept=0.95 or -o max_iter=500 "
        "(values as Python literals; each method's options are listed below)",
    )
    f.add_argument(
        "--out",
        default="bayesglmm_out",
        metavar="DIR",
        help="folder for the saved result and plots (default: bayesglmm_out)",
    )
    sampling(f, defaults=False)
    f.set_defaults(handler=_cmd_fit)

    c = sub.add_parser(
        "compare",
        help="fit a model by several methods; table, tidy CSV and forest plot",
        description="Fit SPEC (a name from `bayesglmm specs`, a .toml file) or FORMULA (with "
        "--data) by each of --methods and put the estimates side by side with the spec's "
        "reference values. Writes <name>_compare.csv (one row per method and parameter) and "
        "<name>_compare.png (forest plot) to --out. A method that does not apply to the "
        "design (e.g. gee or agq on crossed factors) is listed with its reason.",
    )
    c.add_argument("model", metavar="SPEC_OR_FORMULA")
    c.add_argument(
        "--data", metavar="CSV_OR_DATASET", help="a CSV file or a data set name (see datasets)"
    )
    c.add_argument("--family", help="binomial (default), poisson, gaussian, negative_binomial")
    c.add_argument("--link", help="logit, probit, cloglog, log, identity (default: R's)")
    c.add_argument(
        "--methods",
        default="all",
        help=f"comma-separated methods, or all (default): {', '.join(available_methods())}",
    )
    c.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="[METHOD.]KEY=VALUE",
        help="an option for every method that takes it (-o max_iter=500) or for one method "
        "(-o nuts.target_accept=0.95); values as Python literals",
    )
    c.add_argument(
        "--out",
        default="bayesglmm_out",
        metavar="DIR",
        help="folder for the tidy CSV and the forest plot (default: bayesglmm_out)",
    )
    sampling(c, defaults=False)
    c.set_defaults(handler=_cmd_compare)

    t = sub.add_parser(
        "test",
        help="test whether a random-effect variance is zero (LRT, score, RLRT, bootstrap)",
        description="Fit SPEC (a name from `bayesglmm specs`, a .toml file) or FORMULA (with "
        "--data) by --fit-method, then test the variance(s) of --term by --method "
        "(bayesglmm.inference.variance_tests.test_variance) and print the result. The score "
        "test needs no fit of the full model: it takes the unfitted model.",
    )
    t.add_argument("model", metavar="SPEC_OR_FORMULA")
    t.add_argument(
        "--data", metavar="CSV_OR_DATASET", help="a CSV file or a data set name (see datasets)"
    )
    t.add_argument("--family", help="binomial (default), poisson, gaussian, negative_binomial")
    t.add_argument("--link", help="logit, probit, cloglog, log, identity (default: R's)")
    t.add_argument(
        "--term",
        default=None,
        help='the random term to test, e.g. "(1|Female)", a grouping factor with one term, or '
        '"g|x" for one column of a correlated term (default: the model\'s only term)',
    )
    t.add_argument(
        "--method",
        default="lrt",
        help=f"the test: {', '.join(TEST_METHODS)} (default: lrt)",
    )
    t.add_argument(
        "--fit-method",
        default=None,
        help="the likelihood fit tested (default: lmm for a Gaussian identity model, else laplace)",
    )
    t.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the fit method, e.g. -o max_iter=500 (a Python literal)",
    )
    t.add_argument(
        "--test-option",
        "-t",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the test, e.g. -t n_boot=200 (bootstrap) or -t nsim=20000 (rlrt)",
    )
    t.add_argument(
        "--seed", type=int, default=None, help="random seed of the test (rlrt, bootstrap)"
    )
    t.set_defaults(
        handler=_cmd_test,
        draws=None,
        tune=None,
        chains=None,
        cores=None,
        nuts_sampler=None,
        no_progress=True,
    )

    d = sub.add_parser("demo", help="the salamander crossed random-effects analysis (NUTS)")
    d.add_argument(
        "--out",
        default="bayesglmm_demo",
        metavar="DIR",
        help="folder for the saved result and plots (default: bayesglmm_demo)",
    )
    d.add_argument("--data-dir", default=None, help="folder holding the data sets")
    sampling(d, defaults=True)
    d.set_defaults(handler=_cmd_demo)

    s = sub.add_parser("specs", help="list the model specs in models/")
    s.set_defaults(handler=_cmd_specs)
    ds = sub.add_parser("datasets", help="list the reference data sets")
    ds.set_defaults(handler=_cmd_datasets)
    return p


# ------------------------------------------------------------------------------------------
# commands


def _build_model(args, data, data_hint: str):
    """The model of ``fit`` and ``compare``: a formula with --data, or a spec by name or path.

    Returns the model, the name its output files take, and the spec (None for a formula).
    """
    from .analysis.specs import load_spec
    from .glmm import GLMM

    if "~" in args.model:
        if data is None:
            raise CLIError(f"a formula needs --data {data_hint} (got formula {args.model!r})")
        model = GLMM(args.model, data, family=args.family or "binomial", link=args.link)
        return model, "model", None
    spec = load_spec(args.model)
    if args.family or args.link:
        raise CLIError(
            f"--family and --link apply to a formula; a spec sets its own (edit {spec.path})"
        )
    return spec.build(data=data), spec.name, spec


def _cmd_fit(args) -> int:
    import pandas as pd

    from .methods import get_method

    method = args.method.lower()
    get_method(method)  # an unknown method: one clear line before any data is read
    options = _method_options(args, method)
    data = _read_csv(args.data) if args.data else None
    model, name, spec = _build_model(args, data, "CSV")
    _check_out(Path(args.out))
    print(model)
    if "random_seed" in options and draws_at_random(method):
        print(f"random seed: {options['random_seed']} (--seed to change)")
    result = model.fit(method=method, **options)
    print(result)
    if spec is not None and spec.references:
        with pd.option_context("display.width", 140):
            print("\nBeside the spec's reference values:")
            print(spec.compare(result).to_string(float_format=lambda v: f"{v:.4f}"))
    seed = DEFAULT_SEED if args.seed is None else args.seed
    _write_outputs(result, Path(args.out), f"{name}_{method}", args.no_plots, seed)
    return 0


def _cmd_compare(args) -> int:
    import pandas as pd

    from .analysis.comparison import fit_plan, plan_methods, references_of

    progressbar = False if args.no_progress else None
    plan = plan_methods(_compare_methods(args), progressbar=progressbar)  # before any data
    data = _data_arg(args.data) if args.data else None
    model, name, _ = _build_model(args, data, "CSV_OR_DATASET")
    refs = references_of(model, None)
    _check_out(Path(args.out))
    print(model)
    seeds = {p.options["random_seed"] for p in plan if "random_seed" in p.options}
    if seeds:
        print(f"random seed: {', '.join(map(str, sorted(seeds)))} (--seed to change)")
    print("methods: " + ", ".join(p.label for p in plan))
    result = fit_plan(model, plan, refs, progressbar=progressbar)
    print()
    with pd.option_context("display.width", 160):
        print(result)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / f"{name}_compare.csv"
    result.tidy.to_csv(csv, index=False)
    written = [str(csv)]
    if result.fits and not args.no_plots:
        png = out / f"{name}_compare.png"
        fig = result.plot(png, title=f"{model.formula}")
        _pyplot_close(fig)
        written.append(str(png))
    print("\nWrote " + ", ".join(written))
    return 0


def _cmd_test(args) -> int:
    import inspect

    from .inference import variance_tests as vt

    method = args.method.lower()
    if method not in TEST_METHODS:
        raise CLIError(f"--method must be one of {', '.join(TEST_METHODS)}, got {args.method!r}")
    test_options = _literal_options(args.test_option, "--test-option")
    if args.seed is not None:
        test_options["random_seed"] = args.seed
    resolve = getattr(vt, "resolve_test_options", None)
    if resolve is not None:  # unknown or bad test options: one line before any data
        resolve(method, test_options)
    elif test_options:
        accepted = inspect.signature(vt.test_variance).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
            raise CLIError(f"test_variance takes no options, got {', '.join(test_options)}")
    data = _data_arg(args.data) if args.data else None
    model, _, _ = _build_model(args, data, "CSV_OR_DATASET")
    labels = [t.spec.label for t in model.design.random]
    if args.term is not None:
        vt.find_term(model.design, args.term)  # an unknown term: one line before the fit
    elif len(labels) != 1:
        raise CLIError(
            "--term: the model has no random-effect term to test"
            if not labels
            else f"--term is needed: the model has several random terms ({', '.join(labels)})"
        )
    print(model)
    if method == "score":
        if args.fit_method is not None or args.option:
            raise CLIError("--fit-method and --option do not apply: the score test fits no model")
        result = vt.test_variance(model, args.term, method=method, **test_options)
    else:
        fit_method = (args.fit_method or _default_fit_method(model)).lower()
        from .methods import get_method

        get_method(fit_method)
        fit_args = argparse.Namespace(**{**vars(args), "seed": None})  # --seed is the test's
        fit = model.fit(method=fit_method, **_method_options(fit_args, fit_method))
        print(fit)
        result = vt.test_variance(fit, args.term, method=method, **test_options)
    print()
    print(repr(result))
    return 0


def _default_fit_method(model) -> str:
    """``lmm`` for a Gaussian model with the identity link, else ``laplace``."""
    family = model.design.family
    if family.name == "gaussian" and family.link.name == "identity":
        return "lmm"
    return "laplace"


def _literal_options(items, flag: str) -> dict:
    """``KEY=VALUE`` items as a dict, values read as Python literals (else kept as text)."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.isidentifier():
            raise CLIError(f"{flag} expects KEY=VALUE, got {item!r}")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            out[key] = text
    return out


def _compare_methods(args) -> dict:
    """``{label: (method, options)}`` from --methods, the sampling flags and -o, unchecked
    (:func:`bayesglmm.comparison.plan_methods` checks them)."""
    from .methods import available_methods
    from .options import _closest, known_options

    names = [m.strip().lower() for m in args.methods.split(",") if m.strip()]
    if not names:
        raise CLIError(f"--methods: no method named in {args.methods!r}")
    if names == ["all"]:
        names = available_methods()
    elif "all" in names:
        raise CLIError("--methods: 'all' cannot be combined with other names")
    from .methods import get_method

    for m in names:
        get_method(m)  # an unknown method: one line naming the known ones
    if len(set(names)) != len(names):
        raise CLIError(f"--methods names a method twice: {args.methods!r}")
    options = {m: {} for m in names}
    flags = {
        "draws": ("--draws", args.draws),
        "tune": ("--tune", args.tune),
        "chains": ("--chains", args.chains),
        "cores": ("--cores", args.cores),
        "random_seed": ("--seed", args.seed),
        "nuts_sampler": ("--nuts-sampler", args.nuts_sampler),
    }
    for key, (flag, value) in flags.items():
        if value is None:
            continue
        takers = [m for m in names if key in known_options(m)]
        if not takers:
            raise CLIError(f"{flag} applies to none of the methods {', '.join(names)}")
        for m in takers:
            options[m][key] = value
    if args.seed is None:
        for m in names:
            if "random_seed" in known_options(m):
                options[m]["random_seed"] = DEFAULT_SEED
    for item in args.option:
        key, sep, text = item.partition("=")
        method, dot, key = key.rpartition(".")
        if not sep or not key.isidentifier() or (dot and not method):
            raise CLIError(f"--option expects [METHOD.]KEY=VALUE, got {item!r}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = text
        if method:
            if method.lower() not in options:
                raise CLIError(
                    f"--option {item!r}: method {method!r} is not in --methods ({', '.join(names)})"
                )
            options[method.lower()][key] = value
            continue
        takers = [m for m in names if key in known_options(m)]
        if not takers:
            every = sorted({k for m in names for k in known_options(m)})
            raise CLIError(
                f"--option {key!r}: none of the methods {', '.join(names)} takes it"
                f"{_closest(key, every)}"
            )
        for m in takers:
            options[m][key] = value
    return {m: (m, options[m]) for m in names}


def _data_arg(text: str):
    """``--data``: a CSV file, or the name of a packaged data set."""
    from .model import datasets

    if not Path(text).exists() and text in datasets.available():
        return datasets.load(text)
    return _read_csv(text)


def _pyplot_close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def _cmd_demo(args) -> int:
    import pandas as pd

    from .analysis.specs import load_spec
    from .demo import demo_data

    options = _method_options(args, "nuts")  # checked before the data are read
    demo = demo_data(args.data_dir)  # the packaged real data; a clear error if unreadable
    print(demo.message)
    spec = load_spec("salamander")
    model = spec.build(data=demo.data)
    _check_out(Path(args.out))
    print(model)
    print(f"random seed: {options['random_seed']} (--seed to change)")
    result = model.fit(method="nuts", **options)
    print(result)
    conv = result.convergence["details"]
    opts = result.info["options"]
    print(
        f"\nNUTS ({result.info['details'].get('nuts_sampler')}): {opts.get('chains')} chains x "
        f"{opts.get('draws')} draws in "
        f"{result.elapsed:.1f} s; divergences {conv.get('divergences')}, "
        f"max R-hat {conv.get('max_r_hat', float('nan')):.4f}, "
        f"min bulk ESS {conv.get('min_ess_bulk', float('nan')):.0f}"
    )
    table = spec.compare(result, label="NUTS (this fit)")
    with pd.option_context("display.width", 160, "display.max_columns", 10):
        print("\nPosterior means beside published and R estimates of the same model:")
        print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    print("Sources:")
    for ref in spec.references:
        print(f"  {ref.method}: {' '.join(ref.source.split())}")
    _write_outputs(result, Path(args.out), "salamander_nuts", args.no_plots, args.seed)
    return 0


def _cmd_specs(args) -> int:
    from .analysis.specs import available_specs, load_spec

    for name in available_specs():
        s = load_spec(name)
        print(f"{name:<16} {s.family:<10} data={s.dataset:<14} {s.formula}")
    return 0


def _cmd_datasets(args) -> int:
    from .model import datasets

    for name in datasets.available():
        print(f"{name:<16} {datasets.describe(name)}")
    return 0


# ------------------------------------------------------------------------------------------
# helpers


def _read_csv(path: str):
    import pandas as pd

    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise CLIError(f"--data: no such file {path!r}") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise CLIError(f"--data: cannot read {path!r} as CSV: {e}") from None


def _method_options(args, method: str) -> dict:
    """Options for ``method`` from the flags given, checked by :mod:`bayesglmm.options`.

    A flag (``--draws``, ``--seed`` ...) must name an option of the method; ``-o KEY=VALUE``
    values are read as Python literals (else kept as strings) and checked like the API's;
    a sampling method gets :data:`DEFAULT_SEED` unless ``--seed`` says otherwise.
    """
    from .options import known_options, resolve_options

    known = known_options(method)
    flags = {
        "draws": ("--draws", args.draws),
        "tune": ("--tune", args.tune),
        "chains": ("--chains", args.chains),
        "cores": ("--cores", args.cores),
        "random_seed": ("--seed", args.seed),
        "nuts_sampler": ("--nuts-sampler", args.nuts_sampler),
    }
    options = {}
    for key, (flag, value) in flags.items():
        if value is None:
            continue
        if key not in known:
            raise CLIError(
                f"{flag} does not apply to method {method!r}; it takes: {', '.join(known)}"
            )
        options[key] = value
    if "random_seed" in known and args.seed is None:
        options["random_seed"] = DEFAULT_SEED
    for item in getattr(args, "option", []):
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise CLIError(f"--option expects KEY=VALUE, got {item!r}")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            options[key] = value
    if args.no_progress and "progressbar" in known:
        options["progressbar"] = False
    return resolve_options(method, options)


def draws_at_random(method: str) -> bool:
    """Whether ``method``'s estimates depend on its seed: samplers, Monte Carlo likelihoods
    and simulated estimating equations (Laplace and PQL take a seed only for the probes of
    the large crossed solver, so their printed seed would mislead)."""
    from .methods import get_record

    record = get_record(method)
    if "random_seed" not in record.options:
        return False
    return record.kind in ("bayesian", "monte carlo") or "n_sim" in record.options


def _check_out(out: Path) -> None:
    """Check, before any fit, that ``--out`` can be created and written in (one line if
    not); a folder that does not exist yet is not created here, so a fit that fails leaves
    nothing behind."""
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out: {str(out)!r} is a file, not a folder; name a folder")
    base = out
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise CLIError(f"--out: cannot create the folder {str(out)!r}: {str(base)!r} is a file")
    try:
        probe = tempfile.mkdtemp(prefix=".bayesglmm-check-", dir=base)
    except OSError as err:
        raise CLIError(
            f"--out: cannot write the folder {str(out)!r} in {str(base)!r}: {err.strerror or err}"
        ) from None
    Path(probe).rmdir()


def _write_outputs(result, out: Path, stem: str, no_plots: bool, seed: int = DEFAULT_SEED) -> None:
    """Save the fit and its summary; unless ``no_plots``, the ArviZ plots of a fit with draws
    and, for every fit, ``<stem>_residuals.png`` (quantile residuals, seeded by ``seed``)."""
    out.mkdir(parents=True, exist_ok=True)
    saved = result.save(out / f"{stem}.fit.zip")
    result.summary().to_csv(out / f"{stem}_summary.csv")
    print(f"\nSaved {saved} (FitResult.load reads it) and {out / f'{stem}_summary.csv'}")
    if no_plots:
        return
    paths = {}
    if result.idata is not None:
        from .analysis.plots import write_plots

        paths.update(write_plots(result, out, prefix=f"{stem}_"))
    residual_plot = _write_residual_plot(result, out / f"{stem}_residuals.png", seed)
    if residual_plot is not None:
        paths["residuals"] = residual_plot
    if paths:
        print("Plots: " + ", ".join(str(p) for p in paths.values()))


def _write_residual_plot(result, path: Path, seed: int) -> Path | None:
    """The simulated quantile residuals' plots (all panels) as a PNG; a warning line, not
    an error, when they cannot be computed (the fit itself is already saved)."""
    from .analysis.plots import DPI
    from .diagnostics.plots import plot_residuals
    from .diagnostics.residuals import residuals

    try:
        res = residuals(result, kind="quantile", random_seed=seed)
        fig = plot_residuals(res, kind="all")
    except BayesGLMMError as err:
        print(f"bayesglmm: warning: no residual plot: {_one_line(err)}", file=sys.stderr)
        return None
    fig.savefig(path, dpi=DPI)
    _pyplot_close(fig)
    return path


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = str(message).strip()
    if not category.__module__.startswith("bayesglmm"):
        text = f"({category.__name__}) {text.splitlines()[0] if text else ''}"
    print(f"bayesglmm: warning: {text}", file=sys.stderr if file is None else file)


def _one_line(err: BaseException) -> str:
    return "; ".join(line.strip() for line in str(err).splitlines() if line.strip())


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, or a bad flag already reported in one line
        return stop.code if isinstance(stop.code, int) else EXIT_ERROR
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        return args.handler(args)
    except BayesGLMMError as err:
        if args.traceback:
            raise
        print(f"bayesglmm: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as err:  # not the user's mistake: still one line, and how to see more
        if args.traceback:
            raise
        print(
            f"bayesglmm: error: unexpected {type(err).__name__}: {_one_line(err)} (rerun with "
            "--traceback for the full trace, and please report it)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("bayesglmm: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":
    sys.exit(main())
