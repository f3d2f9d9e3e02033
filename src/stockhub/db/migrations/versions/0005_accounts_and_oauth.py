"""accounts and OAuth: users, partners, authorization codes, store connections;
OAuth access and refresh tokens join the api_tokens table as token kinds

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 13:49:00.378437
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('partners',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('client_secret_hash', sa.String(length=64), nullable=True),
    sa.Column('redirect_uris', sa.Text(), nullable=False),
    sa.Column('scopes', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_partners'))
    )
    op.create_table('users',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('organization_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_users_organization_id_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_users_organization_id'), ['organization_id'], unique=False)

    op.create_table('oauth_codes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('partner_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('organization_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('redirect_uri', sa.Text(), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('code_challenge', sa.String(length=128), nullable=True),
    sa.Column('code_challenge_method', sa.String(length=10), nullable=True),
    sa.Column('family', sa.String(length=32), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_oauth_codes_organization_id_organizations')),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_oauth_codes_partner_id_partners')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_oauth_codes_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oauth_codes')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_oauth_codes_code_hash'))
    )
    op.create_table('store_connections',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('partner_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('store_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('organization_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('partner_store_id', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_store_connections_organization_id_organizations')),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_store_connections_partner_id_partners')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_store_connections_store_id_stores')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_store_connections')),
    sa.UniqueConstraint('partner_id', 'partner_store_id', name='uq_store_connections_partner_store_id'),
    sa.UniqueConstraint('partner_id', 'store_id', name='uq_store_connections_partner_store')
    )
    with op.batch_alter_table('store_connections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_store_connections_store_id'), ['store_id'], unique=False)

    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('partner_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.add_column(sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.add_column(sa.Column('scope', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('family', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(), nullable=True))
        batch_op.alter_column('organization_id',
               existing_type=sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
               nullable=True)
        batch_op.create_index(batch_op.f('ix_api_tokens_family'), ['family'], unique=False)
        batch_op.create_index(batch_op.f('ix_api_tokens_partner_id'), ['partner_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_api_tokens_user_id_users'), 'users', ['user_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_api_tokens_partner_id_partners'), 'partners', ['partner_id'], ['id'])

    with op.batch_alter_table('stores', schema=None) as batch_op:
        batch_op.add_column(sa.Column('upload_key_sealed', sa.Text(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('stores', schema=None) as batch_op:
        batch_op.drop_column('upload_key_sealed')

    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_api_tokens_partner_id_partners'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_api_tokens_user_id_users'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_api_tokens_partner_id'))
        batch_op.drop_index(batch_op.f('ix_api_tokens_family'))
        batch_op.alter_column('organization_id',
               existing_type=sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
               nullable=False)
        batch_op.drop_column('expires_at')
        batch_op.drop_column('family')
        batch_op.drop_column('scope')
        batch_op.drop_column('user_id')
        batch_op.drop_column('partner_id')

    with op.batch_alter_table('store_connections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_store_connections_store_id'))

    op.drop_table('store_connections')
    op.drop_table('oauth_codes')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_organization_id'))

    op.drop_table('users')
    op.drop_table('partners')
