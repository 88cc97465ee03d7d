"""The keras-tuner engine: the same space, training and study folder as the Ray engine, on one machine.

``python -m search run --engine keras-tuner --kt-tuner hyperband|bayesian|random`` samples the space through
keras-tuner's oracles instead of Optuna, runs the trials one after another in this process (no Ray), and
writes the same ``study.json``, ``trials.csv``, ``history.csv`` and ``models/`` as the Ray engine, so reports
and benchmarks compare the engines directly. keras-tuner keeps its own state in ``<study>/kt/`` (the oracle,
one ``trial_<id>/`` per trial, plus caesweep's ``record.json`` and Hyperband checkpoints there).

How it maps onto keras-tuner:

- The space is sampled define-by-run through :class:`KerasTunerTrial`, which answers the three Optuna calls
  :meth:`spaces.Space.sample` makes with ``hp.Int`` / ``hp.Float`` / ``hp.Choice``. The whole space is
  declared before the first trial (:func:`declare_space`), so the first trial is sampled like the others.
  Parameters that exist only for some depths (per-level ``filters_3`` needs depth >= 3) are declared inside
  ``hp.conditional_scope("depth", [...])``: keras-tuner then samples them only when they are active.
- Training is caesweep's own :func:`cae.training.train` (same models, metrics in the reference space, early
  stopping), overriding ``Tuner.run_trial``; it returns the objective (``--objectives``, one metric).
- Hyperband (factor 3, one iteration, ``max_epochs`` of the study) sets the number of trials itself:
  ``samples`` is :func:`hyperband_trials` of ``max_epochs``, whatever ``--samples`` says. A promoted
  configuration is a new keras-tuner trial (``tuner/trial_id`` names its parent); it continues from the
  parent's checkpoint (weights, optimizer and early-stopping state) up to the new budget, as keras-tuner's
  own Hyperband does. Only when that checkpoint is missing does it retrain from scratch.
- Random search and Bayesian optimisation run ``samples`` trials of ``max_epochs`` each.

Status of a trial (the ``status`` column):

- FAILED: training raised (a diverging loss, an impossible configuration, any exception). The reason is
  kept, keras-tuner is told with ``FailedTrialError`` (no retry) and the search goes on: the consecutive-
  failure limit is set above the number of trials, so failures never stop the study.
- PRUNED: a Hyperband stage whose budget (``tuner/epochs``) is below ``max_epochs``. Either it was not
  promoted, or it was and a later trial continued it; ``error`` says which (the equivalent of a trial that
  ASHA stopped, or that ASHA let continue under the same id). Pruned trials have no test scores and no
  saved model, like pruned Ray trials.
- COMPLETE: trained to the full budget (every random/Bayesian trial; Hyperband's last stage of a bracket),
  early stopping included. It has test scores and its best-epoch model in ``models/<trial_id>.keras``.
- RUNNING: started but not finished (an interrupted study); ``resume`` runs it again.

Costs: ``history.csv`` holds the epochs each trial trained itself, so a continued trial's curve starts
after its parent's and no epoch is counted twice; ``train_seconds`` is this trial's own training time,
while ``val_mse``, ``epochs`` and ``best_epoch`` describe the model it ends with (parent epochs included).

Seeds: ``--seed`` seeds the data split, the training (through the overrides) and the oracle (as
``seed + 1``, because keras-tuner replaces a seed of 0 by a random one).

Interrupted (SIGINT/SIGTERM): the running trial stops at the end of its epoch and stays RUNNING; ``resume``
runs it again from its start (keras-tuner trials have no per-epoch checkpoints; Hyperband stages do).

Modules: :mod:`search.kt.space` (the space as keras-tuner hyperparameters), :mod:`search.kt.tables`
(statuses and table rows), :mod:`search.kt.trial` (one trial), :mod:`search.kt.engine` (the tuner, run,
resume).
"""
