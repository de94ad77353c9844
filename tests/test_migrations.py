"""Migrations: head matches the models, and the latest steps go down and up again over real data."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from kennel.db.engine import make_engine
from kennel.db.migrate import alembic_config, upgrade
from kennel.db.models import metadata
from tests.conftest import create_database


def _fresh(backend, tmp_path_factory):
    gen = create_database(backend, tmp_path_factory)
    return gen, next(gen)


def test_head_matches_the_models_and_steps_down_and_up(backend, tmp_path_factory):
    gen, url = _fresh(backend, tmp_path_factory)
    engine = make_engine(url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        assert diff == [], f"models and migrations disagree: {diff}"

        def hash_key() -> list[str]:
            return inspect(engine).get_pk_constraint("dataset_record_hashes")["constrained_columns"]

        assert hash_key() == ["dataset_pk", "content_hash", "record_id"]
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO projects (id, name, created_at, updated_at) "
                              "VALUES ('p1', 'p', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
            pk = conn.scalar(text("SELECT pk FROM projects WHERE id = 'p1'"))
            conn.execute(text("INSERT INTO datasets (id, project_pk, name, current_version, next_seq, "
                              "content_indexed, created_at, updated_at) VALUES ('d1', :p, 'd', 1, 2, true, "
                              "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), {"p": pk})
            dpk = conn.scalar(text("SELECT pk FROM datasets WHERE id = 'd1'"))
            conn.execute(text("INSERT INTO dataset_record_hashes VALUES ('h', :d, 'r')"), {"d": dpk})
            # One record, deleted at version 2 with its closing still pending.
            conn.execute(text("INSERT INTO dataset_records (dataset_pk, record_id, canonical_id, seq, valid_from, "
                              "input, tags, content_hash, created_at, updated_at) VALUES (:d, 'r', 'c', 1, 1, "
                              "'{}', '[]', 'h', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), {"d": dpk})
            conn.execute(text("INSERT INTO dataset_pending_closures VALUES (:d, 1, 1, 2)"), {"d": dpk})
            conn.execute(text("UPDATE datasets SET closures_pending = true, current_version = 2"))
        cfg = alembic_config(engine)
        per_record = ("dataset_records", "dataset_record_hashes", "dataset_pending_closures")

        def foreign_keys() -> list[int]:
            return [len(inspect(engine).get_foreign_keys(t)) for t in per_record]

        def partial_indexes() -> int:
            if backend != "sqlite":
                return 2
            with engine.connect() as conn:
                return conn.scalar(text("SELECT count(*) FROM sqlite_master WHERE tbl_name = 'dataset_records' "
                                        "AND sql LIKE '%WHERE valid_to IS NULL'"))

        # 0008 (per-record tables without foreign keys) goes down and up again with its rows intact.
        assert foreign_keys() == [0, 0, 0] and partial_indexes() == 2
        command.downgrade(cfg, "0007")
        assert foreign_keys() == [1, 1, 1] and partial_indexes() == 2
        with engine.connect() as conn:
            assert [conn.scalar(text(f"SELECT count(*) FROM {t}")) for t in per_record] == [1, 1, 1]
        command.upgrade(cfg, "head")
        assert foreign_keys() == [0, 0, 0] and partial_indexes() == 2
        with engine.connect() as conn:
            assert [conn.scalar(text(f"SELECT count(*) FROM {t}")) for t in per_record] == [1, 1, 1]
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        assert diff == [], f"models and migrations disagree after 0008 down and up: {diff}"
        # 0007 down writes the pending closing into the record's row, so the delete is not lost.
        command.downgrade(cfg, "0006")
        assert "dataset_pending_closures" not in inspect(engine).get_table_names()
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT valid_to FROM dataset_records WHERE record_id = 'r'")) == 2
        for target, key in (("0005", ["content_hash", "dataset_pk", "record_id"]),
                            ("head", ["dataset_pk", "content_hash", "record_id"])):
            if target == "head":
                command.upgrade(cfg, target)
            else:
                command.downgrade(cfg, target)
            assert hash_key() == key
            with engine.connect() as conn:
                # The index is rebuilt on demand: the dataset is marked unindexed, and nothing else changed.
                assert conn.scalar(text("SELECT count(*) FROM dataset_record_hashes")) == 0
                assert conn.scalar(text("SELECT content_indexed FROM datasets WHERE id = 'd1'")) in (False, 0)
                assert conn.scalar(text("SELECT name FROM datasets WHERE id = 'd1'")) == "d"
                # SQLite rebuilds `datasets` for these steps; its records must survive that.
                assert conn.scalar(text("SELECT valid_to FROM dataset_records WHERE record_id = 'r'")) == 2
    finally:
        engine.dispose()
        gen.close()


def test_binary_copy_types_match_the_records_table(backend, tmp_path_factory):
    """PostgreSQL takes new records by binary COPY (store_postgres.PostgresStore.insert), where every value must be
    sent in its column's exact type: a column whose type changes must change COPY_TYPES too."""
    if backend != "postgres":
        pytest.skip("binary COPY is PostgreSQL's")
    from kennel.datasets.models import REVISION_COLUMNS as INSERT_COLUMNS
    from kennel.datasets.store_postgres import COPY_TYPES

    gen, url = _fresh(backend, tmp_path_factory)
    engine = make_engine(url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            types = dict(conn.execute(text(
                "SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a "
                "WHERE a.attrelid = 'dataset_records'::regclass AND a.attnum > 0 AND NOT a.attisdropped")).all())
            names = dict(conn.execute(text(
                "SELECT t, format_type(t::regtype, NULL) FROM unnest(CAST(:types AS text[])) AS t"),
                {"types": list(COPY_TYPES)}).all())
        assert [types[c] for c in INSERT_COLUMNS] == [names[t] for t in COPY_TYPES]
    finally:
        engine.dispose()
        gen.close()
