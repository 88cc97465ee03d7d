"""Which rows of a study's trial table the search made, and which ``search confirm`` added: defined once here.

A confirm repeat holds, in ``repeat_of``, the trial id of the search trial whose configuration it trains again
with a new training seed (its own ``seed``); a search trial's ``repeat_of`` is empty (NaN, or an empty string
in a table read as text). Repeats are never ranked or counted as trials of the search.
"""

from __future__ import annotations

import pandas as pd

REPEAT_OF = "repeat_of"


def is_repeat(trials: pd.DataFrame) -> pd.Series:
    """True for each row that a confirm run added (False for every row of a table without ``repeat_of``)."""
    if REPEAT_OF not in trials.columns:
        return pd.Series(False, index=trials.index)
    column = trials[REPEAT_OF]
    return column.notna() & (column.astype(str) != "")


def search_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials the search made (not the repeats of ``search confirm``)."""
    return trials[~is_repeat(trials)]


def repeat_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The repeats of ``search confirm`` (the rows :func:`search_trials` leaves out)."""
    return trials[is_repeat(trials)]
