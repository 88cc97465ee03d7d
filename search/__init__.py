"""Sweeps: search spaces handed to Ray Tune with Optuna samplers and ASHA (or to keras-tuner), with resume.

``python -m search run | resume | list``; see :mod:`search.commands`.
"""
