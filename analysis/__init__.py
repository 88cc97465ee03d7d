"""What a study means: tables first, then findings, plots, and Markdown / HTML / terminal rendering.

Pipeline: :mod:`analysis.tables` (pure pandas) and :mod:`analysis.importance` (Optuna's evaluators) compute;
:mod:`analysis.build` collects one study's tables and :mod:`analysis.findings` its sentences;
:mod:`analysis.plots` and :mod:`analysis.images` draw; :mod:`analysis.document` orders the sections and
:mod:`analysis.render` writes them; :mod:`analysis.report` is the command line. Studies are read only
through :mod:`results`; nothing here trains.
"""
