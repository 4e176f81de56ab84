"""The study: profiles, notebook set-up, the stages of each notebook, comparisons, plots.

Imports from ``data`` and ``engine``, never from ``cli`` or ``report``. Modules: ``profiles``,
``parameters`` (the notebooks' parameters, declared once), ``layout`` (the study folder),
``notebook`` (``setup``), ``stages`` (one module per notebook), ``compare`` (the paper's numbers
and the conclusion), ``analysis`` (01's statistics), ``gradcam``, ``perturb`` (robustness),
``plots``.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "PROFILES": "profiles",
    "profile_config": "profiles",
    "resolve_profile": "profiles",
    "PARAMETERS": "parameters",
    "NOTEBOOK_PARAMETERS": "parameters",
    "StudyLayout": "layout",
    "StudyError": "layout",
    "Study": "notebook",
    "setup": "notebook",
    "display_name": "compare",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
