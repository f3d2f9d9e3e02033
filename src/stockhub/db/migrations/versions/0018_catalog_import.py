"""catalog import: products keep SKU, categories, images and attributes; regional catalogs with
prices; catalog import jobs and their rejected items

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30 13:30:00
"""

import json

from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('catalog_products', schema=None) as batch_op:
        batch_op.alter_column('brand', existing_type=sa.String(length=200), nullable=True)
        batch_op.alter_column('image_url', existing_type=sa.String(length=2000), nullable=True)
        batch_op.alter_column('description', existing_type=sa.Text(), nullable=True)
        batch_op.alter_column('condition', existing_type=sa.String(length=20), nullable=True)
        batch_op.add_column(sa.Column('sku', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('categories', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('images', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('attributes', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('import_id', Id, nullable=True))
        batch_op.add_column(sa.Column('title_key', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('brand_key', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('categories_key', sa.Text(), nullable=True))
        batch_op.create_index('ix_catalog_products_organization_id_sku', ['organization_id', 'sku'], unique=False)
        batch_op.create_index('ix_catalog_products_organization_id_brand_key', ['organization_id', 'brand_key'], unique=False)
    _backfill_search_keys()
    op.create_table(
        'catalogs',
        sa.Column('id', Id, nullable=False),
        sa.Column('organization_id', Id, nullable=False),
        sa.Column('locale', sa.String(length=20), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name='fk_catalogs_organization_id_organizations'),
        sa.PrimaryKeyConstraint('id', name='pk_catalogs'),
        sa.UniqueConstraint('organization_id', 'locale', 'currency', name='uq_catalogs_organization_id_locale_currency'),
    )
    op.create_table(
        'catalog_prices',
        sa.Column('catalog_id', Id, nullable=False),
        sa.Column('identifier', sa.String(length=64), nullable=False),
        sa.Column('price_minor', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['catalog_id'], ['catalogs.id'], name='fk_catalog_prices_catalog_id_catalogs'),
        sa.PrimaryKeyConstraint('catalog_id', 'identifier', name='pk_catalog_prices'),
    )
    op.create_table(
        'catalog_imports',
        sa.Column('id', Id, nullable=False),
        sa.Column('organization_id', Id, nullable=False),
        sa.Column('format', sa.String(length=10), nullable=False),
        sa.Column('path', sa.String(length=1000), nullable=False),
        sa.Column('size_bytes', sa.BigInteger(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('received_at', sa.DateTime(), nullable=False),
        sa.Column('started_at', sa.DateTime(), nullable=True),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.Column('worker_id', sa.String(length=100), nullable=True),
        sa.Column('lease_until', sa.DateTime(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('total_count', sa.Integer(), nullable=True),
        sa.Column('rejected_count', sa.Integer(), nullable=False),
        sa.Column('created_count', sa.Integer(), nullable=False),
        sa.Column('updated_count', sa.Integer(), nullable=False),
        sa.Column('unchanged_count', sa.Integer(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name='fk_catalog_imports_organization_id_organizations'),
        sa.PrimaryKeyConstraint('id', name='pk_catalog_imports'),
    )
    op.create_index('ix_catalog_imports_organization_id_id', 'catalog_imports', ['organization_id', 'id'], unique=False)
    op.create_index('ix_catalog_imports_status', 'catalog_imports', ['status'], unique=False)
    op.create_table(
        'catalog_import_rejections',
        sa.Column('id', Id, nullable=False),
        sa.Column('import_id', Id, nullable=False),
        sa.Column('item', sa.Integer(), nullable=False),
        sa.Column('identifier', sa.String(length=64), nullable=True),
        sa.Column('field', sa.String(length=100), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['import_id'], ['catalog_imports.id'], name='fk_catalog_import_rejections_import_id_catalog_imports'),
        sa.PrimaryKeyConstraint('id', name='pk_catalog_import_rejections'),
    )
    op.create_index('ix_catalog_import_rejections_import_id', 'catalog_import_rejections', ['import_id'], unique=False)


def _backfill_search_keys() -> None:
    """Products from products.csv before this revision: their search keys, images and categories
    (the same rule as services/catalog.py's, frozen here)."""
    conn = op.get_bind()
    products = sa.table(
        'catalog_products',
        sa.column('organization_id'), sa.column('identifier'), sa.column('title'), sa.column('brand'),
        sa.column('image_url'), sa.column('category'), sa.column('categories'), sa.column('images'),
        sa.column('title_key'), sa.column('brand_key'), sa.column('categories_key'),
    )
    rows = conn.execute(sa.select(products.c.organization_id, products.c.identifier, products.c.title, products.c.brand,
                                  products.c.image_url, products.c.category)).all()
    for row in rows:
        path = ' > '.join(part.strip() for part in row.category.split('>')) if row.category else None
        conn.execute(
            products.update()
            .where(products.c.organization_id == row.organization_id, products.c.identifier == row.identifier)
            .values(
                title_key=row.title.casefold(),
                brand_key=row.brand.casefold() if row.brand else None,
                categories=json.dumps([path] if path else []),
                images=json.dumps([row.image_url] if row.image_url else []),
                categories_key=f'\n{path.casefold()}\n' if path else '\n',
            )
        )


def downgrade() -> None:
    op.drop_index('ix_catalog_import_rejections_import_id', table_name='catalog_import_rejections')
    op.drop_table('catalog_import_rejections')
    op.drop_index('ix_catalog_imports_status', table_name='catalog_imports')
    op.drop_index('ix_catalog_imports_organization_id_id', table_name='catalog_imports')
    op.drop_table('catalog_imports')
    op.drop_table('catalog_prices')
    op.drop_table('catalogs')
    with op.batch_alter_table('catalog_products', schema=None) as batch_op:
        batch_op.drop_index('ix_catalog_products_organization_id_brand_key')
        batch_op.drop_index('ix_catalog_products_organization_id_sku')
        for column in ('categories_key', 'brand_key', 'title_key', 'import_id', 'attributes', 'images', 'categories', 'sku'):
            batch_op.drop_column(column)
        batch_op.alter_column('condition', existing_type=sa.String(length=20), nullable=False)
        batch_op.alter_column('description', existing_type=sa.Text(), nullable=False)
        batch_op.alter_column('image_url', existing_type=sa.String(length=2000), nullable=False)
        batch_op.alter_column('brand', existing_type=sa.String(length=200), nullable=False)
