"""Pricing as code: the catalog schema, loading, validation and diff."""

from ratecard.catalog.loader import load_catalog, parse_catalog_text
from ratecard.catalog.schema import Catalog, Charge, Meter, Plan

__all__ = ["Catalog", "Charge", "Meter", "Plan", "load_catalog", "parse_catalog_text"]
