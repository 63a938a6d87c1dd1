"""The API's tables: API keys and customer portal tokens (Alembic branch ``api``).

A credential is stored as the SHA-256 of its secret, never the secret itself: the
full token is shown once, when it is created. Tokens are long random strings (160
bits), so a fast hash is safe here (there is nothing to brute-force).

* ``role`` is ``admin``, ``ingest`` or ``read`` for an API key, ``portal`` for a
  portal token; a portal token carries the external id of its one ``customer``.
* ``key_id`` is the public part of the token (``rck_<key_id>_<secret>``): what
  ``ratecard keys list`` shows and ``ratecard keys revoke`` takes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ratecard.store.models import Base, UTCDateTime


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), default="")
    customer: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
