"""Warnings that point at the user's line, not at the bayesglmm module that raised them.

``warnings.warn(..., stacklevel=3)`` is right for one call path only (``GLMM.fit`` ->
``fit_pql`` -> here) and wrong for another (``fit_pql`` called directly, or one more helper
in between). :func:`warn` instead attributes the warning to the first frame outside the
package: ``skip_file_prefixes`` on Python 3.12+, the same walk done by hand on 3.11.

:class:`WarningsRecord` is how :meth:`bayesglmm.GLMM.fit` keeps the warnings of a fit: it records
every warning raised inside it (whatever the caller's filters), hands their texts to the
result and then raises each one again, unchanged, through the caller's filters.
"""

from __future__ import annotations

import os
import sys
import warnings

from ._arviz import is_arviz_notice

#: frames whose file starts with this belong to bayesglmm and are skipped
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

#: warnings about code (its versions, imports, resources), not about a fit: raised again
#: but not kept with the result
CODE_WARNINGS: tuple[type[Warning], ...] = (
    DeprecationWarning,
    PendingDeprecationWarning,
    FutureWarning,
    ImportWarning,
    ResourceWarning,
    SyntaxWarning,
    BytesWarning,
)


def _user_frame():
    """The first frame outside bayesglmm (from the caller of the caller of this), and the
    ``stacklevel`` that names it from the caller of this."""
    frame = sys._getframe(2)
    level = 2
    while frame is not None and frame.f_code.co_filename.startswith(PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return frame, level


def warn(message: str | Warning, category: type[Warning] = UserWarning) -> None:
    """:func:`warnings.warn` attributed to the user's line (the first frame outside bayesglmm).

    Parameters
    ----------
    message : str or Warning
        A Warning instance keeps its own class (as with :func:`warnings.warn`).
    category : type of Warning
    """
    if sys.version_info >= (3, 12):
        warnings.warn(message, category, skip_file_prefixes=(PACKAGE_DIR,))
        return
    _, level = _user_frame()
    warnings.warn(message, category, stacklevel=level)


def _reraise(w: warnings.WarningMessage) -> None:
    """Raise the recorded warning ``w`` again: at the user's line if it was raised there or
    inside bayesglmm, else (a library's own line) where it was raised."""
    frame, _ = _user_frame()
    at_user = frame is not None and (w.filename, w.lineno) == (
        frame.f_code.co_filename,
        frame.f_lineno,
    )
    if at_user or w.filename.startswith(PACKAGE_DIR):
        warn(w.message, w.category)
        return
    module = _module_globals(w.filename)
    if module is None:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        return
    warnings.warn_explicit(
        w.message,
        w.category,
        w.filename,
        w.lineno,
        module.get("__name__"),
        module.setdefault("__warningregistry__", {}),
        module,
        source=w.source,
    )


def _module_globals(filename: str) -> dict | None:
    """The globals of the imported module defined in ``filename`` (None if there is none)."""
    for mod in list(sys.modules.values()):
        if getattr(mod, "__file__", None) == filename:
            return vars(mod)
    return None


class WarningsRecord:
    """Record every warning raised inside the ``with`` block; on leaving it (normally or by
    an exception) put the text of each that concerns the fit (not a :data:`CODE_WARNINGS`)
    in :attr:`texts`, then raise each warning again, unchanged (category, message, the
    user's line), through the caller's filters. ArviZ's refactor notice (raised when a fit
    first imports PyMC) is dropped.

    Warnings raised in other processes (sampler workers) never reach this process and are
    not recorded.

    Examples
    --------
    >>> with WarningsRecord() as raised:      # doctest: +SKIP
    ...     estimates = fit(model)
    >>> raised.texts                          # doctest: +SKIP
    """

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._catch = warnings.catch_warnings(record=True)
        self._caught: list[warnings.WarningMessage] = []

    def __enter__(self) -> WarningsRecord:
        self._caught = self._catch.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc) -> None:
        self._catch.__exit__(*exc)
        caught = [w for w in self._caught if not is_arviz_notice(w.message, w.category)]
        self.texts.extend(
            str(w.message) for w in caught if not issubclass(w.category, CODE_WARNINGS)
        )
        for w in caught:
            _reraise(w)
