"""Helpers the tests share: a ready tenant, and the two-step upload as a POS does it."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import httpx2 as httpx

from stockhub.services import tenancy
from stockhub.services.context import Hub


@dataclass
class Tenant:
    organization: str
    brand: str
    store: str
    upload_key: str
    token: str

    @property
    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}


def make_tenant(hub: Hub, name: str = "Acme Books", country: str = "GB") -> Tenant:
    org = tenancy.create_organization(hub, name).id
    brand = tenancy.create_brand_for(hub, org, f"{name} brand").id
    store = tenancy.create_store_for(hub, brand, {"name": f"{name} store", "country": country})
    token = tenancy.create_api_token(hub, org).secret
    return Tenant(org, brand, store.id, store.secret, token)


def upload(client: httpx.Client, upload_key: str, body: bytes, kind: str = "stock") -> dict:
    """The two-step upload as a POS does it; returns the upload id and status from the PUT."""
    step1 = client.get(f"/upload/{upload_key}", params={"type": kind})
    assert step1.status_code == 200, step1.text
    step2 = client.put(step1.text, content=body, headers={"Content-Type": "text/csv"})
    assert step2.status_code == 200, step2.text
    return step2.json()


def wait_for_upload(client: httpx.Client, tenant: Tenant, upload_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        record = client.get(f"/v1/uploads/{upload_id}", headers=tenant.auth).json()
        if record["status"] not in ("received", "processing"):
            return record
        assert time.monotonic() < deadline, f"upload {upload_id} still {record['status']}"
        time.sleep(0.05)


def upload_and_wait(client: httpx.Client, tenant: Tenant, body: bytes) -> dict:
    return wait_for_upload(client, tenant, upload(client, tenant.upload_key, body)["upload_id"])


def gtins(count: int, seed: int) -> list[str]:
    """Distinct valid EAN-13s."""
    bodies = random.Random(seed).sample(range(10**10, 10**11), count)
    out = []
    for body in bodies:
        digits = f"5{body:011d}"
        total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits))
        out.append(digits + str((10 - total % 10) % 10))
    return out
