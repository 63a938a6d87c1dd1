"""Alembic revision files (each domain's branch carries its own branch label)."""
