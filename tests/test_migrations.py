"""Migrations: head matches the models, and the latest step goes down and up again over real data."""

from __future__ import annotations

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
        cfg = alembic_config(engine)
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
    finally:
        engine.dispose()
        gen.close()
