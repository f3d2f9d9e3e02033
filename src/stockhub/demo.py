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
    token = vault.unseal(hub.secret, made["token_sealed"]) if made.get("token_sealed") else None
    if token is None or accounts.principal_for_token(hub, token) is None:  # first run, or the token was revoked
        token = tenancy.create_api_token(hub, made["organization"], label="demo").secret
        made["token_sealed"] = vault.seal(hub.secret, token)
        marker.write_text(json.dumps(made))
        marker.chmod(0o600)
    keys = [_current_key(hub, made["organization"], store) for store in made["stores"]]
    store, key = made["stores"][0], keys[0] or "$KEY"
    lines = [
        "",
        "stockhub demo" + (" (the one made at the first start: same stores, keys and token)" if again else ""),
        f"  organization {made['organization']}, brand {made['brand']}",
        *(
            f"  store {s}  upload key {k}" if k else f"  store {s}  upload key: shown when it was made (`stockhub store rotate-key {s}` makes a new one)"
            for s, k in zip(made["stores"], keys, strict=True)
        ),
        f"  API token    {token}",
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


def _current_key(hub: Hub, organization_id: str, store_id: str) -> str | None:
    """The store's current upload key from the vault, or None when it cannot be read back."""
    try:
        return connections.current_upload_key(hub, ids.decode("organization", organization_id), store_id)
    except ServiceError:
        return None
