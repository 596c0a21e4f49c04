"""The plugin authors' contract kit: the checks every rlstruct task must pass, as plain functions
and as pytest fixtures (this package is a pytest plugin, enabled when rlstruct is installed).

In a plugin's tests::

    from rlstruct.testing import check_task

    def test_contract():
        check_task("my-task")                # by name (installed), or check_task(MyTask())

or, with the fixtures of :mod:`rlstruct.testing.pytest_plugin`::

    def test_contract(rlstruct_check_task):
        rlstruct_check_task("my-task")       # shares one tiny chat tokenizer per test session

What is checked, and how to skip a check, is documented in :func:`check_task`. The other helpers:

- :func:`registered_plugin`: a context manager that registers a plugin in-process, uninstalled;
- :func:`score_completions`: score completions as training does (bounded reward pool);
- :func:`tiny_model` and :func:`smoke_train`: build a tiny local model and train it a few GRPO
  steps on the task, end to end, on CPU.

Importing this package never imports torch; the prompt check and the model helpers do.
"""

from .contract import CHECKS, check_task
from .data_checks import check_hash_seed, check_prompts, check_records, check_splits
from .hostile import generic_hostile_outputs, reference_mutations
from .inprocess import registered_plugin, resolve_task
from .models import kit_tokenizer, load_tokenizer, smoke_train, tiny_model
from .report import ContractFailure, ContractReport
from .reward_checks import check_bounds, check_hostile, check_reference
from .scoring import score_completions

__all__ = [
    "CHECKS",
    "ContractFailure",
    "ContractReport",
    "check_bounds",
    "check_hash_seed",
    "check_hostile",
    "check_prompts",
    "check_records",
    "check_reference",
    "check_splits",
    "check_task",
    "generic_hostile_outputs",
    "kit_tokenizer",
    "load_tokenizer",
    "reference_mutations",
    "registered_plugin",
    "resolve_task",
    "score_completions",
    "smoke_train",
    "tiny_model",
]
