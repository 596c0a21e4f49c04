"""Adapters that let other training libraries use rlstruct tasks and rewards.

- :mod:`rlstruct.integrations.trl`: reward functions and data sets for TRL's ``GRPOTrainer``.

Each adapter imports its library lazily, so importing this package costs nothing.
"""
