"""Fixtures for the advisor tests: catalogs written inline, validated by the real loader."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ratecard.catalog import Catalog, parse_catalog_text


@pytest.fixture
def catalog_from() -> Callable[[str], Catalog]:
    """Parse catalog YAML text with the real loader (so fixtures are valid catalogs)."""

    def parse(text: str) -> Catalog:
        return parse_catalog_text(text, name="<test catalog>")

    return parse
