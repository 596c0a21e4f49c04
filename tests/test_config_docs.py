"""docs/config.md is generated from the config dataclasses and must stay current."""

import dataclasses
import typing
from pathlib import Path

from rlstruct.config import Config, describe_markdown, field_docs


def test_config_reference_is_up_to_date():
    doc = (Path(__file__).parents[1] / "docs" / "config.md").read_text()
    assert doc.strip() == describe_markdown().strip(), "regenerate: python -m rlstruct.config > docs/config.md"


def test_every_config_field_has_a_docstring():
    for section in dataclasses.fields(Config):
        cls = typing.get_type_hints(Config)[section.name]
        docs = field_docs(cls)
        missing = [f.name for f in dataclasses.fields(cls) if not docs.get(f.name)]
        assert not missing, f"[{section.name}] fields without a docstring: {missing}"
