"""Smoke test of a running medbook (production build, MEDBOOK_STORE=aws) over plain HTTP, stdlib only.

Usage: python3 .ci/smoke.py BASE_URL MEDBOOK_BINARY   (the binary signs the token, with the service's secret)
Exits non-zero with a message at the first thing that does not hold.
"""

import datetime
import json
import subprocess
import sys
import urllib.error
import urllib.request

base, binary = sys.argv[1], sys.argv[2]


def call(method, path, token=None, body=None, headers=None):
    req = urllib.request.Request(base + path, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, data, timeout=10) as res:
            return res.status, res.headers, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def expect(cond, what):
    if not cond:
        sys.exit(f"smoke: FAILED: {what}")
    print(f"smoke: ok: {what}")


status, headers, body = call("GET", "/health/ready")
expect(status == 200, "GET /health/ready is 200")
status, headers, body = call("GET", "/docs/")
expect(status == 200 and b"swagger" in body.lower(), "Swagger UI at /docs/")
status, headers, body = call("GET", "/openapi.json")
expect(status == 200 and json.loads(body)["openapi"].startswith("3."), "OpenAPI document at /openapi.json")
status, headers, body = call("GET", "/v1/test-types")
types = json.loads(body)
items = types["items"] if isinstance(types, dict) else types
expect(status == 200 and len(items) == 9, "the catalog migration ran on the separate engine (9 test types)")

token = subprocess.run(
    [binary, "token", "--role", "admin", "--sub", "smoke"], check=True, capture_output=True, text=True
).stdout.strip()
status, _, body = call(
    "POST", "/v1/patients", token,
    {"givenName": "Grace", "familyName": "Hopper", "birthDate": "1906-12-09", "sex": "female"},
)
expect(status == 201, f"POST /v1/patients is 201 ({status} {body[:200]!r})")
patient = json.loads(body)["id"]
day = (datetime.date.today() + datetime.timedelta(days=30)).isoformat()
status, _, body = call(
    "POST", f"/v1/patients/{patient}/bookings", token,
    {"slotStart": f"{day}T08:00:00Z", "tests": ["CBC", "TSH"]},
    {"Idempotency-Key": "smoke-1"},
)
expect(status == 201, f"POST …/bookings is 201 ({status} {body[:200]!r})")
booking = json.loads(body)["id"]
status, headers, body = call("GET", f"/v1/patients/{patient}/bookings/{booking}", token)
expect(status == 200 and len(json.loads(body)["tests"]) == 2, "GET the booking tree")
expect("calls=1" in headers.get("Dynamodb-Usage", ""), "the booking tree is one DynamoDB call")
status, headers, body = call("GET", f"/v1/patients/{patient}/bookings/{booking}/fhir", token)
bundle = json.loads(body)
expect(
    status == 200 and headers.get("Content-Type") == "application/fhir+json" and bundle["type"] == "collection",
    "FHIR export is an application/fhir+json collection Bundle",
)
status, _, body = call("GET", "/v1/worklist", None)
expect(status == 401, "no token, no worklist (401)")
