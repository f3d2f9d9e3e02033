"""`stockhub serve --demo`: a demo organization with two stores, and how to try it with curl."""

from __future__ import annotations

import json

from stockhub.services import tenancy
from stockhub.services.context import Hub

_STORES = [
    {"name": "Demo Books Islington", "country": "GB", "address_line1": "1 Upper Street", "city": "London", "postal_code": "N1 8EA", "latitude": 51.536, "longitude": -0.103},
    {"name": "Demo Books Manchester", "country": "GB", "address_line1": "1 Piccadilly", "city": "Manchester", "postal_code": "M1 1AD", "latitude": 53.481, "longitude": -2.237},
]


def create_demo(hub: Hub, base_url: str, ftp_port: int | None = None) -> str:
    """Make the demo tenant on first run; later runs reuse it with fresh keys (keys are shown only once)."""
    marker = hub.settings.data_dir / "demo.json"
    if marker.exists():
        made = json.loads(marker.read_text())
        keys = [tenancy.rotate_upload_key(hub, None, store_id) for store_id in made["stores"]]
    else:
        org = tenancy.create_organization(hub, "Demo Retailer").id
        brand = tenancy.create_brand_for(hub, org, "Demo Books").id
        stores = [tenancy.create_store_for(hub, brand, fields) for fields in _STORES]
        made = {"organization": org, "brand": brand, "stores": [s.id for s in stores]}
        keys = [s.secret for s in stores]
        marker.write_text(json.dumps(made))
    token = tenancy.create_api_token(hub, made["organization"], label="demo").secret
    store, key = made["stores"][0], keys[0]
    lines = [
        "",
        "stockhub demo",
        f"  organization {made['organization']}, brand {made['brand']}",
        *(f"  store {s}  upload key {k}" for s, k in zip(made["stores"], keys, strict=True)),
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
