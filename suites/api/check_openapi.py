#!/usr/bin/env python3
"""Real responses of a running `payments serve` against its OpenAPI document.

Validates the document, then sends real requests to every route (successes and each
documented error) and checks status, content type and body against the document's
schema for that status. Prints one line per check and "N passed, N failed" last.
"""
import json
import sys
import urllib.error
import urllib.request
import uuid

import yaml
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate as validate_spec

base, spec_path = sys.argv[1], sys.argv[2]
spec = yaml.safe_load(open(spec_path))
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {what}")
    else:
        failed += 1
        print(f"FAIL  {what}")


def resolve(node):
    while isinstance(node, dict) and "$ref" in node:
        parts = node["$ref"].lstrip("#/").split("/")
        node = spec
        for p in parts:
            node = node[p]
    return node


def request(method, path, body=None, headers=None):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def conforms(method, template, path, status, headers, body, what):
    op = spec["paths"][template][method.lower()]
    response = op["responses"].get(str(status))
    if response is None:
        check(False, f"{what}: status {status} is not documented for {method} {template}")
        return
    response = resolve(response)
    content = response.get("content", {})
    ctype = headers.get("Content-Type", headers.get("content-type", "")).split(";")[0]
    if ctype not in content:
        check(False, f"{what}: content type {ctype!r} not documented for {status}")
        return
    schema = resolve(content[ctype]["schema"])
    if ctype == "application/json":
        try:
            doc = json.loads(body)
        except ValueError:
            check(False, f"{what}: body is not JSON")
            return
        resolver_spec = dict(spec)
        errors = list(OAS30Validator({**schema, "components": spec["components"]}).iter_errors(doc))
        check(not errors, f"{what}: {status} body matches the schema" + (f" ({errors[0].message})" if errors else ""))
    else:
        check(len(body) > 0, f"{what}: {status} {ctype} body present")


try:
    validate_spec(spec)
    check(True, "openapi.yaml is a valid OpenAPI 3 document")
except Exception as e:  # noqa: BLE001
    check(False, f"openapi.yaml is invalid: {e}")

served = request("GET", "/openapi.yaml")
check(served[0] == 200 and yaml.safe_load(served[2]) == spec, "GET /openapi.yaml serves this document")

key = f"conformance-{uuid.uuid4()}"
payment = {"amount_minor": 1234, "currency": "EUR", "debtor": "acct_1", "creditor": "acct_2", "priority": 5}
jh = {"Content-Type": "application/json"}
s, h, b = request("POST", "/v1/payments", payment, {**jh, "Idempotency-Key": key})
conforms("POST", "/v1/payments", "/v1/payments", s, h, b, "POST new payment")
check(s == 201, "POST new payment is 201")
job_id = json.loads(b)["id"]
s, h, b = request("POST", "/v1/payments", payment, {**jh, "Idempotency-Key": key})
conforms("POST", "/v1/payments", "/v1/payments", s, h, b, "POST same key, same body")
s, h, b = request("POST", "/v1/payments", {**payment, "amount_minor": 1}, {**jh, "Idempotency-Key": key})
conforms("POST", "/v1/payments", "/v1/payments", s, h, b, "POST same key, other body")
check(s == 409, "POST same key, other body is 409")
for name, body, hdrs in [
    ("bad JSON", b"{", {**jh, "Idempotency-Key": key + "x"}),
    ("no key", payment, jh),
    ("zero amount", {**payment, "amount_minor": 0}, {**jh, "Idempotency-Key": key + "y"}),
    ("oversized", b" " * 70000, {**jh, "Idempotency-Key": key + "z"}),
    ("text body", b"hello", {"Content-Type": "text/plain", "Idempotency-Key": key + "w"}),
]:
    s, h, b = request("POST", "/v1/payments", body, hdrs)
    conforms("POST", "/v1/payments", "/v1/payments", s, h, b, f"POST {name}")
    check(400 <= s < 500, f"POST {name} is 4xx ({s})")

for name, path, hdrs in [
    ("existing", f"/v1/payments/{job_id}", {}),
    ("unknown", "/v1/payments/9223372036854775000", {}),
    ("non-numeric", "/v1/payments/abc", {}),
    ("bad token", f"/v1/payments/{job_id}", {"X-Freshness-Token": "nope"}),
]:
    s, h, b = request("GET", path, None, hdrs)
    conforms("GET", "/v1/payments/{id}", path, s, h, b, f"GET {name}")
s, h, _ = request("GET", f"/v1/payments/{job_id}")
check("X-Served-By" in h and "X-Read-Source" in h and "X-Replica-Lag-Seconds" in h, "GET carries X-Served-By, X-Read-Source, X-Replica-Lag-Seconds")
# Conditional reads: the ETag again answers 304 without a body; HEAD answers as GET does, without one.
tag = {k.lower(): v for k, v in h.items()}.get("etag")
check(tag is not None and {k.lower(): v for k, v in h.items()}.get("cache-control") == "no-cache", f"GET carries an ETag and Cache-Control no-cache (open payment): {tag}")
s, h, b = request("GET", f"/v1/payments/{job_id}", None, {"If-None-Match": tag or ""})
check("304" in spec["paths"]["/v1/payments/{id}"]["get"]["responses"], "304 is documented for GET /v1/payments/{id}")
check(s == 304 and b == b"", f"GET If-None-Match the ETag: 304 without a body (got {s})")
for path in ["/", "/healthz", f"/v1/payments/{job_id}", "/openapi.yaml"]:
    s, h, b = request("HEAD", path)
    check(s == 200 and b == b"", f"HEAD {path}: 200 without a body (got {s})")

# Cancel (this serve has no workers: the payment was never claimed, so it is cancelled at once).
for name, path in [("never sent", f"/v1/payments/{job_id}/cancel"), ("again", f"/v1/payments/{job_id}/cancel"),
                   ("unknown", "/v1/payments/9223372036854775000/cancel"), ("non-numeric", "/v1/payments/abc/cancel")]:
    s, h, b = request("POST", path)
    conforms("POST", "/v1/payments/{id}/cancel", path, s, h, b, f"POST cancel {name}")
    if name in ("never sent", "again"):
        check(s == 200 and json.loads(b).get("state") == "cancelled", f"POST cancel {name}: 200 and cancelled")
for template in ["/v1/stats", "/healthz", "/readyz", "/metrics"]:
    s, h, b = request("GET", template)
    conforms("GET", template, template, s, h, b, f"GET {template}")
s, h, b = request("GET", "/metrics")
check(b"payments_jobs_claimed_total" in b or b"payments_claim_batch_size" in b, "GET /metrics exposes the worker metrics")

print(f"openapi conformance: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
