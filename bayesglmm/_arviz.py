"""ArviZ imported without its "undergoing a major refactor" notice.

ArviZ 0.x raises, once a day on its first import, a :class:`FutureWarning` that it is
being refactored: news about ArviZ, not about the user's code or fit. bayesglmm ignores
that one warning where it imports ArviZ (:func:`import_arviz`), and where a fit imports it
through PyMC (:class:`bayesglmm._warn.WarningsRecord` drops it, :func:`is_arviz_notice`);
the user's own warning filters are left as they are.
"""

from __future__ import annotations

import re
import sys
import warnings
from types import ModuleType

#: the start of ArviZ's refactor notice (its text begins with a newline)
ARVIZ_NOTICE = r"\s*ArviZ is undergoing a major refactor"


def is_arviz_notice(message: Warning | str, category: type[Warning]) -> bool:
    """Whether a warning is ArviZ's refactor notice."""
    return issubclass(category, FutureWarning) and re.match(ARVIZ_NOTICE, str(message)) is not None


def import_arviz() -> ModuleType:
    """``import arviz``, without ArviZ's refactor notice (other warnings pass)."""
    module = sys.modules.get("arviz")
    if module is not None:
        return module
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=ARVIZ_NOTICE, category=FutureWarning)
        import arviz
    return arviz
