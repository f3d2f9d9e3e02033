"""an inventory.updated event holds its changes in its own row (events.changes: JSON, one array
per field) instead of one inventory_changes row per change

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-30 20:00:00
"""

from itertools import groupby
import json

from alembic import op
import sqlalchemy as sa


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")

# services/events.py's CHANGE, as of this revision
FIELDS = ["identifier", "on_hand_before", "on_hand", "committed", "safety_stock", "expired", "price_minor", "currency", "promotion_minor"]
_events = sa.table('events', sa.column('id', Id), sa.column('changes', sa.Text))
_changes = sa.table(
    'inventory_changes',
    sa.column('event_id', Id),
    sa.column('identifier', sa.String),
    sa.column('on_hand_before', sa.Integer),
    sa.column('on_hand', sa.Integer),
    sa.column('committed', sa.Integer),
    sa.column('safety_stock', sa.Integer),
    sa.column('expired', sa.Boolean),
    sa.column('price_minor', sa.BigInteger),
    sa.column('currency', sa.String),
    sa.column('promotion_minor', sa.BigInteger),
)
BATCH = 500  # events per statement


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('changes', sa.Text(), nullable=True))
    if bind.dialect.name == 'postgresql' and bind.dialect.server_version_info >= (14,):
        # ~25 kB of JSON per event: lz4 compresses it at a fraction of pglz's cost (a first ingest
        # of 200,000 products writes 400 of them); a server built without lz4 keeps pglz.
        op.execute(
            "DO $$ BEGIN ALTER TABLE events ALTER COLUMN changes SET COMPRESSION lz4; "
            "EXCEPTION WHEN feature_not_supported THEN NULL; END $$"
        )
    c = _changes.c
    rows = bind.execute(sa.select(*c).order_by(c.event_id, c.identifier)).yield_per(10_000)
    updates = []
    for event_id, changes in groupby(rows, key=lambda row: row.event_id):
        changes = list(changes)
        document = {name: [bool(v) if name == 'expired' else v for v in (getattr(row, name) for row in changes)] for name in FIELDS}
        updates.append({'b_id': event_id, 'b_changes': json.dumps(document, separators=(',', ':'))})
        if len(updates) == BATCH:
            _write(bind, updates)
            updates = []
    _write(bind, updates)
    op.drop_table('inventory_changes')


def _write(bind, updates: list[dict]) -> None:
    if updates:
        bind.execute(_events.update().where(_events.c.id == sa.bindparam('b_id')).values(changes=sa.bindparam('b_changes')), updates)


def downgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        'inventory_changes',
        sa.Column('event_id', Id, nullable=False),
        sa.Column('identifier', sa.String(length=64), nullable=False),
        sa.Column('on_hand_before', sa.Integer(), nullable=True),
        sa.Column('on_hand', sa.Integer(), nullable=False),
        sa.Column('committed', sa.Integer(), nullable=False),
        sa.Column('safety_stock', sa.Integer(), nullable=False),
        sa.Column('expired', sa.Boolean(), nullable=False),
        sa.Column('price_minor', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('promotion_minor', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('event_id', 'identifier', name=op.f('pk_inventory_changes')),
    )
    rows = bind.execute(sa.select(_events.c.id, _events.c.changes).where(_events.c.changes.is_not(None))).yield_per(BATCH)
    for event_id, text in rows:
        columns = json.loads(text)
        changes = [dict(zip(FIELDS, values), event_id=event_id) for values in zip(*(columns[name] for name in FIELDS))]
        bind.execute(_changes.insert(), changes)
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('changes')
