"""Alembic migrations of the transactional state (one branch per domain)."""
