"""Search spaces over CAE hyperparameters: typed, validated, one YAML file per space.

``load_space("quick")`` reads a shipped space (``list_spaces()`` names them) or, given a path, the user's
own file. A :class:`Space` samples define-by-run through Optuna's ``suggest_*`` trial API and resolves the
sampled values into the flat config :func:`cae.config.from_flat` accepts. This package imports neither
TensorFlow, Ray nor Optuna.
"""

from spaces.loader import list_spaces, load_space, space_from_dict
from spaces.space import AXES, KINDS, ROLES, TASKS, Param, Space, TrialLike

__all__ = [
    "AXES",
    "KINDS",
    "ROLES",
    "TASKS",
    "Param",
    "Space",
    "TrialLike",
    "list_spaces",
    "load_space",
    "space_from_dict",
]
