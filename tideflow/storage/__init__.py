"""SQL storage: SQLAlchemy tables, the ``Store`` implementation, alembic migrations."""
