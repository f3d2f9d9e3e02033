"""A method a path does not have is a 405 problem naming the methods it does have (RFC 9110 `Allow`)."""

from __future__ import annotations


def test_a_wrong_method_is_a_405_that_says_which_methods_the_path_has(client, tenant):
    refused = client.delete("/v1/orders", headers=tenant.auth)
    assert refused.status_code == 405
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.headers["Allow"] == "GET, HEAD, POST"

    refused = client.put(f"/v1/stores/{tenant.store}/stock", headers=tenant.auth)
    assert refused.status_code == 405 and refused.headers["Allow"] == "GET, HEAD"
