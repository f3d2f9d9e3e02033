"""`stockhub serve --demo`: a demo organization with two stores, and how to try it with curl."""

from __future__ import annotations

import json

from stockhub import ids
from stockhub.errors import ServiceError
from stockhub.services import accounts, connections, tenancy, vault
from stockhub.services.context import Hub

_STORES = [
    {"name": "Demo Books Islington", "country": "GB", "address_line1": "1 Upper Street", "city": "London", "postal_code": "N1 8EA", "latitude": 51.536, "longitude": -0.103},
    {"name": "Demo Books Manchester", "country": "GB", "address_line1": "1 Piccadilly", "city": "Manchester", "postal_code": "M1 1AD", "latitude": 53.481, "longitude": -2.237},
]


def create_demo(hub: Hub, base_url: str, ftp_port: int | None = None) -> str:
    """Make the demo tenant on first run; later runs reuse it as it is: the same stores, their
    current upload keys (read back from the vault) and the same API token (kept sealed in
    demo.json), so re-running `serve --demo` rotates nothing and makes no new token."""
    marker = hub.settings.data_dir / "demo.json"
    again = marker.exists()
    if again:
        made = json.loads(marker.read_text())
    else:
        org = tenancy.create_organization(hub, "Demo Retailer").id
        brand = tenancy.create_brand_for(hub, org, "Demo Books").id
        made = {"organization": org, "brand": brand, "stores": [tenancy.create_store_for(hub, brand, fields).id for fields in _STORES]}
        made["people_sealed"] = vault.seal(hub.secret, _populate(hub, made))
    token = vault.unseal(hub.secret, made["token_sealed"]) if made.get("token_sealed") else None
    if token is None or accounts.principal_for_token(hub, token) is None:  # first run, or the token was revoked
        token = tenancy.create_api_token(hub, made["organization"], label="demo").secret
        made["token_sealed"] = vault.seal(hub.secret, token)
        marker.write_text(json.dumps(made))
        marker.chmod(0o600)
    keys = [_current_key(hub, made["organization"], store) for store in made["stores"]]
    store, key = made["stores"][0], keys[0] or "$KEY"
    password = vault.unseal(hub.secret, made["people_sealed"]) if made.get("people_sealed") else None
    lines = [
        "",
        "stockhub demo" + (" (the one made at the first start: same stores, keys and token)" if again else ""),
        f"  organization {made['organization']}, brand {made['brand']}",
        *(
            f"  store {s}  upload key {k}" if k else f"  store {s}  upload key: shown when it was made (`stockhub store rotate-key {s}` makes a new one)"
            for s, k in zip(made["stores"], keys, strict=True)
        ),
        f"  API token    {token}",
        *(
            [
                f"Dashboard: {base_url}/dashboard",
                f"  the retailer: sign in as {DEMO_USER} with the password {password}",
                f"  its partner (Demo Till Co): sign in as {DEMO_PARTNER_USER}, same password (or sign out first)",
            ]
            if password
            else []
        ),
        "",
        "Try it:",
        "  printf 'barcode,price,quantity\\n9780141383743,6.99,3\\n9781409162988,20,0\\n' > stock.csv",
        f"  curl -s -T stock.csv \"$(curl -s '{base_url}/upload/{key}?type=stock')\"",
        f"  curl -s -H 'Authorization: Bearer {token}' {base_url}/v1/stores/{store}/uploads",
        f"  curl -s -H 'Authorization: Bearer {token}' {base_url}/v1/stores/{store}/stock",
    ]
    if ftp_port:
        host = base_url.split("://", 1)[1].rsplit(":", 1)[0]
        lines += [
            "Or over FTP (or FTPS: add --ssl-reqd -k for the self-signed certificate):",
            f"  curl -s -T stock.csv ftp://apikey:{key}@{host}:{ftp_port}/",
            f"  curl -s ftp://apikey:{key}@{host}:{ftp_port}/upload_log.txt",
        ]
    lines.append("")
    return "\n".join(lines)


DEMO_USER = "demo@stockhub.test"
DEMO_PARTNER_USER = "partner@stockhub.test"
_GOOD = "barcode,price,quantity\n9780007525546,8.99,4\n9780099549482,9.99,2\n9780241950425,7.99,0\n5012345678900,3.50,12\n"
_WITH_REJECTS = "barcode,price,quantity\n9780007525546,8.99,6\n9780099549482,9.99,1\n9780241950425,7.99,3\n9780241950426,7.99,3\n12345,0,2\n"
_REFUSED = "Qty Count,Description,Code\n3,A book,x\n5,Cereal,y\n1,Lamp,z\n"


def _populate(hub: Hub, made: dict) -> str:
    """What makes every dashboard view show something: a retailer's user, a partner connected to
    the first store and its user, a few uploads (one refused), orders, and a webhook subscription
    whose receiver is down (so deliveries wait to be retried). Returns the users' password."""
    import secrets
    import tempfile
    from pathlib import Path

    from stockhub.jobs.worker import Worker
    from stockhub.services import orders, uploads, webhooks

    password = secrets.token_urlsafe(12)
    organization = ids.decode("organization", made["organization"])
    accounts.create_user(hub, made["organization"], DEMO_USER, password, "owner")
    partner = accounts.create_partner(hub, "Demo Till Co", ["http://127.0.0.1/callback"], None, public=False).id
    accounts.create_partner_user(hub, partner, DEMO_PARTNER_USER, password)
    first, second = made["stores"]
    connections.connect(hub, organization, ids.decode("partner", partner), made["brand"], first, "till-1")
    webhooks.create_subscription(
        hub, organization, webhooks.SubscriptionFields(url="http://127.0.0.1:9/demo-hooks", event_types=["order.created", "store.status_changed"])
    )
    with tempfile.TemporaryDirectory() as folder:
        for store, body in ((first, _GOOD), (first, _REFUSED), (first, _WITH_REJECTS), (second, _GOOD)):
            path = Path(folder) / "stock.csv"
            path.write_text(body)
            uploads.import_file(hub, store, path)
            Worker(hub, deliver_webhooks=False).run_until_idle()
    for n, (identifier, quantity) in enumerate((("9780007525546", 2), ("9780099549482", 1), ("9780241950425", 1)), start=1001):
        booking = {
            "external_id": f"demo-{n}", "channel": {"type": "web", "name": "shop.example"}, "currency": "GBP",
            "customer": {"email": f"customer{n}@example.com", "name": f"Customer {n}"},
            "lines": [{"identifier": identifier, "quantity": quantity, "unit_price": "8.99"}],
            "fulfilment": {"type": "pickup", "store_id": first},
        }
        order, _ = orders.book(hub, organization, orders.Booking.model_validate(booking))
        if n == 1001:
            orders.step(hub, organization, ids.encode("order", order.row.id), orders.Action.CONFIRM)
    return password


def _current_key(hub: Hub, organization_id: str, store_id: str) -> str | None:
    """The store's current upload key from the vault, or None when it cannot be read back."""
    try:
        return connections.current_upload_key(hub, ids.decode("organization", organization_id), store_id)
    except ServiceError:
        return None
