"""Alembic environment: runs against the engine kennel hands it (see kennel.db.migrate)."""

from alembic import context

from kennel.db.models import metadata

config = context.config


def run_migrations_online() -> None:
    engine = config.attributes["engine"]
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        raw = connection.connection.driver_connection
        if sqlite:
            # Batch steps rebuild a SQLite table (copy, drop, rename). With foreign keys on, dropping the
            # old `datasets` would cascade and delete every record of every dataset. The pragma only
            # takes effect outside a transaction, so it goes to the driver before SQLAlchemy begins one.
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                render_as_batch=sqlite,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left rows without their parent: {broken[:5]}")
            if connection.in_transaction():
                # Alembic has committed its own; what SQLAlchemy autobegan after it must end before the
                # pragma below can take effect.
                connection.commit()
        finally:
            if sqlite:
                if connection.in_transaction():  # a failed step: undo it before the connection is reused
                    connection.rollback()
                raw.execute("PRAGMA foreign_keys=ON")


if context.is_offline_mode():  # pragma: no cover
    raise SystemExit("offline migrations are not supported; run `kennel db upgrade`")
run_migrations_online()
