"""The ``json-recipes`` task (docs/tasks/json-recipes.md): a recipe as one JSON object matching a schema.

Modules: :mod:`.task` (the task), :mod:`.synthetic` (the seeded generator) and its :mod:`.vocabulary`
(data in ``vocabulary.json``), :mod:`.schema` (``recipe.schema.json``), :mod:`.scoring` (content and
validity) and :mod:`.text_match` (comparing names and steps).
"""

from .task import JsonRecipesTask

__all__ = ["JsonRecipesTask"]
