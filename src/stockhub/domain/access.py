"""Who is calling and what they may do: scopes and the principal a bearer token stands for."""

from __future__ import annotations

from dataclasses import dataclass

SCOPES: dict[str, str] = {
    "organization.read": "see your organization, brands and stores",
    "organization.service_integration": "connect your stores to the application",
    "stock.read": "read your stores' stock",
    "stock.write": "change your stores' stock",
    "orders.read": "read your stores' orders",
    "orders.write": "book and change your stores' orders",
    "webhooks.manage": "manage webhook subscriptions for your stores",
    "uploads.read": "read your stores' uploads and their upload keys",
}
ALL_SCOPES = frozenset(SCOPES)


def scope_list(scope: str | None) -> list[str]:
    return [s for s in (scope or "").split() if s]


@dataclass(frozen=True)
class Principal:
    """The caller behind a bearer token.

    kind `organization`: an organization's API token, every scope, every store of it.
    kind `partner`: an OAuth token of a partner application; `organization` is the one whose
    user authorized it (none for client_credentials), and `store` the connected store named by
    `X-Store-Id` (none when the header is absent). A partner reaches only that store.
    kind `admin`: the platform's administration token (partner registration), no organization.
    """

    kind: str
    scopes: frozenset[str]
    organization: int | None = None
    partner: int | None = None
    store: int | None = None
    token_id: int | None = None
    grantor: int | None = None  # partner: the organization whose user authorized the token

    @property
    def own_organization(self) -> int | None:
        """The organization the token itself speaks for, whatever store `X-Store-Id` names."""
        return self.grantor if self.is_partner else self.organization

    @property
    def is_partner(self) -> bool:
        return self.kind == "partner"

    def has(self, scope: str) -> bool:
        return scope in self.scopes


@dataclass(frozen=True)
class Scope:
    """What a call reaches (and whose webhook subscriptions and events it is about).

    An organization's own (`partner` None): every store of it. A partner's: only `store`, the
    one connected store its `X-Store-Id` names. services/scope.py applies it everywhere.
    """

    organization: int
    partner: int | None = None
    store: int | None = None

    @property
    def is_partner(self) -> bool:
        return self.partner is not None

    def reaches(self, store: int | None) -> bool:
        return store is not None and (self.store is None or store == self.store)
