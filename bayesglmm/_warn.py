"""Warnings that point at the user's line, not at the bayesglmm module that raised them.

``warnings.warn(..., stacklevel=3)`` is right for one call path only (``GLMM.fit`` ->
``fit_pql`` -> here) and wrong for another (``fit_pql`` called directly, or one more helper
in between). :func:`warn` instead attributes the warning to the first frame outside the
package: ``skip_file_prefixes`` on Python 3.12+, the same walk done by hand on 3.11.
"""

from __future__ import annotations

import os
import sys
import warnings

#: frames whose file starts with this belong to bayesglmm and are skipped
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """:func:`warnings.warn` attributed to the user's line (the first frame outside bayesglmm).

    Parameters
    ----------
    message : str
    category : type of Warning
    """
    if sys.version_info >= (3, 12):
        warnings.warn(message, category, skip_file_prefixes=(PACKAGE_DIR,))
        return
    frame = sys._getframe(1)  # our caller: warnings.warn(stacklevel=2) names it
    level = 2
    while frame is not None and frame.f_code.co_filename.startswith(PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
