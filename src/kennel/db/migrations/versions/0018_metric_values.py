"""llmobs_metrics: each metric's type and value as columns (the compare view reads a run's metrics by them
instead of pulling them out of every body's JSON)

Revision ID: 0018
Revises: 0015
"""
import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# A value only when the metric has one of its type and its status is not ERROR (as the intake writes them).
SQLITE_FILL = """
UPDATE llmobs_metrics SET
  metric_type = json_extract(body, '$.metric_type'),
  number_value = CASE WHEN json_extract(body, '$.status') = 'ERROR' THEN NULL
                      WHEN json_extract(body, '$.metric_type') = 'boolean'
                           AND json_type(body, '$.boolean_value') IN ('true', 'false')
                           THEN json_extract(body, '$.boolean_value')
                      WHEN json_extract(body, '$.metric_type') = 'score'
                           AND json_type(body, '$.score_value') IN ('integer', 'real')
                           THEN json_extract(body, '$.score_value') END,
  text_value = CASE WHEN json_extract(body, '$.status') = 'ERROR' THEN NULL
                    WHEN json_extract(body, '$.metric_type') = 'categorical'
                         AND json_type(body, '$.categorical_value') = 'text'
                         THEN json_extract(body, '$.categorical_value') END
"""
POSTGRES_FILL = """
UPDATE llmobs_metrics SET
  metric_type = body ->> 'metric_type',
  number_value = CASE WHEN body ->> 'status' = 'ERROR' THEN NULL
                      WHEN body ->> 'metric_type' = 'boolean' AND jsonb_typeof(body -> 'boolean_value') = 'boolean'
                           THEN CASE WHEN (body ->> 'boolean_value')::boolean THEN 1.0 ELSE 0.0 END
                      WHEN body ->> 'metric_type' = 'score' AND jsonb_typeof(body -> 'score_value') = 'number'
                           THEN (body ->> 'score_value')::double precision END,
  text_value = CASE WHEN body ->> 'status' = 'ERROR' THEN NULL
                    WHEN body ->> 'metric_type' = 'categorical' AND jsonb_typeof(body -> 'categorical_value') = 'string'
                         THEN body ->> 'categorical_value' END
"""


def upgrade() -> None:
    # Plain ADD COLUMN on both databases (no table copy): existing rows are filled by one UPDATE.
    op.add_column("llmobs_metrics", sa.Column("metric_type", sa.String(16), nullable=True))
    op.add_column("llmobs_metrics", sa.Column("number_value", sa.Float(), nullable=True))
    op.add_column("llmobs_metrics", sa.Column("text_value", sa.Text(), nullable=True))
    op.execute(POSTGRES_FILL if op.get_bind().dialect.name == "postgresql" else SQLITE_FILL)


def downgrade() -> None:
    with op.batch_alter_table("llmobs_metrics") as batch:
        batch.drop_column("text_value")
        batch.drop_column("number_value")
        batch.drop_column("metric_type")
