"""Schemathesis against both simulators, with the vendors' OpenAPI specs.

Only the operations the operator calls are tested (OPERATIONS below): each spec is reduced to
them, written as JSON next to the run, and handed to `st run` with its token, its path parameters
pinned to objects that exist, and bounded examples and time. A run fails on a 5xx, a status the
spec does not list for the operation, or an answer whose body, headers or content type violate
the spec. No check is switched off for an operation: where the real service answers outside
its spec, the simulator's test of that answer cites the reference note, and this check would
have to name the exchange — none is needed today.

    python3 check.py <pingone-aic-sim binary> <specs folder> <work folder>

Everything binds and talks to 127.0.0.1 only; no token or secret is printed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent

# (spec, method, path) of every call the operator makes that the spec describes.
OPERATIONS = {
    "pingone": [
        ("get", "/environments/{environmentID}"),
        ("get", "/environments/{environmentID}/applications"),
        ("post", "/environments/{environmentID}/applications"),
        ("get", "/environments/{environmentID}/applications/{applicationID}"),
        ("put", "/environments/{environmentID}/applications/{applicationID}"),
        ("get", "/environments/{environmentID}/applications/{applicationID}/secret"),
        ("post", "/environments/{environmentID}/applications/{applicationID}/secret"),
        ("get", "/environments/{environmentID}/applications/{applicationID}/roleAssignments"),
        ("post", "/environments/{environmentID}/applications/{applicationID}/roleAssignments"),
        ("delete", "/environments/{environmentID}/applications/{applicationID}/roleAssignments/{roleAssignmentID}"),
        ("get", "/roles"),
    ],
    "aic": [
        ("get", "/environment/variables"),
        ("get", "/environment/variables/{variableId}"),
        ("put", "/environment/variables/{variableId}"),
        ("get", "/environment/secrets"),
        ("get", "/environment/secrets/{secretId}"),
        ("put", "/environment/secrets/{secretId}"),
        ("get", "/environment/secrets/{secretId}/versions"),
        ("post", "/environment/secrets/{secretId}/versions"),
        ("get", "/environment/startup"),
        ("get", "/environment/count"),
        ("get", "/environment/promotion/lock/state"),
        ("get", "/environment/promotion/promote"),
        ("get", "/environment/promotion/report"),
        ("get", "/environment/promotion/report/provisional"),
        ("get", "/environment/promotion/reports"),
    ],
}

SPEC_FILES = {
    "pingone": "pingone-management-openapi.yml",
    "aic": "aic-environment-openapi.yaml",
}

# Inputs the spec allows: every answer is documented and conforms.
POSITIVE_CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
])
# Inputs the spec refuses: no 5xx, a refusal, and whatever is answered has the documented
# content type and shape. Their status is not checked: the specs list none for most invalid
# inputs, and what the real services answer to them is not recorded.
NEGATIVE_CHECKS = ",".join([
    "not_a_server_error",
    "negative_data_rejection",
    "content_type_conformance",
    "response_schema_conformance",
])

TENANT = "dev"
SERVICE_ACCOUNT = "5f4b3c2a-1d0e-4f9a-8b7c-6d5e4f3a2b1c"
ADMIN_ENVIRONMENT = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
TARGET_ENVIRONMENT = "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e"
ADMIN_WORKER = "2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rsa_key(work: Path) -> tuple[Path, dict]:
    """An RSA key made by openssl, and its public JWK."""
    key = work / "service-account.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                   capture_output=True)
    modulus = subprocess.run(["openssl", "rsa", "-in", str(key), "-noout", "-modulus"],
                             check=True, capture_output=True, text=True).stdout
    n = bytes.fromhex(modulus.strip().split("=", 1)[1])
    return key, {"kty": "RSA", "e": b64url((65537).to_bytes(3, "big")), "n": b64url(n)}


def signed_assertion(key: Path, audience: str) -> str:
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    now = int(time.time())
    claims = b64url(json.dumps({
        "iss": SERVICE_ACCOUNT, "sub": SERVICE_ACCOUNT, "aud": audience,
        "exp": now + 180, "jti": str(uuid.uuid4()),
    }).encode())
    signing_input = f"{header}.{claims}".encode()
    signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key)],
                               input=signing_input, check=True, capture_output=True).stdout
    return f"{header}.{claims}.{b64url(signature)}"


def call(method: str, url: str, token: str | None = None, body=None, form=None,
         basic: tuple[str, str] | None = None, headers: dict | None = None):
    data, all_headers = None, dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        all_headers["Content-Type"] = "application/x-www-form-urlencoded"
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    if basic:
        all_headers["Authorization"] = "Basic " + base64.b64encode(
            f"{basic[0]}:{basic[1]}".encode()).decode()
    request = urllib.request.Request(url, data=data, headers=all_headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
        return json.loads(text) if text else None


def reduced_spec(name: str, specs: Path, out: Path) -> Path:
    """The spec with only the operator's operations, as JSON (the PingOne file holds a tab that
    strict YAML parsers refuse in a description; it is read as a space)."""
    spec = yaml.safe_load((specs / SPEC_FILES[name]).read_text().replace("\t", " "))
    keep = {}
    for method, path in OPERATIONS[name]:
        item = spec["paths"].get(path)
        if item is None or method not in item:
            raise SystemExit(f"{SPEC_FILES[name]} has no {method.upper()} {path}")
        kept = keep.setdefault(path, {k: v for k, v in item.items()
                                      if k not in ("get", "put", "post", "delete", "patch")})
        kept[method] = item[method]
    spec["paths"] = keep
    without_telemetry_headers(spec)
    overlapping_one_of_as_any_of(spec)
    target = out / f"{name}-operations.json"
    target.write_text(json.dumps(spec, default=str))
    return target


def without_telemetry_headers(spec: dict) -> None:
    """PingOne's optional `X-Ping-External-Transaction-ID` and `-Session-ID` headers are left
    out: the operator never sends them, and PingOne documents rewriting invalid characters in
    them, not refusing a value, so the spec's `maxLength` says nothing of what it answers."""
    for item in spec["paths"].values():
        for method in ("get", "put", "post", "delete"):
            operation = item.get(method)
            if operation and "parameters" in operation:
                operation["parameters"] = [
                    p for p in operation["parameters"]
                    if not (p.get("in") == "header"
                            and p.get("name", "").startswith("X-Ping-External-"))
                ]


def overlapping_one_of_as_any_of(node) -> None:
    """`oneOf` without a discriminator becomes `anyOf`. Both specs list alternatives that
    overlap (PingOne: `region` is one of `EnumRegionCode` or any string, a role is a `Role` or a
    `CustomAdminRole`; AIC: a variable list is V1 or V2, and V2 only adds optional fields), so
    no answer of the real services (`"region": "NA"`, captured) can match exactly one; the
    generated SDKs read them as "any of", and so does this check."""
    if isinstance(node, dict):
        if "oneOf" in node and "discriminator" not in node:
            node["anyOf"] = node.pop("oneOf")
        for value in node.values():
            overlapping_one_of_as_any_of(value)
    elif isinstance(node, list):
        for value in node:
            overlapping_one_of_as_any_of(value)


def start_simulator(binary: str, work: Path, public_jwk: dict, worker_secret: str):
    """The simulator with one PingOne organization and one AIC development tenant; its base
    URLs from the lines it prints."""
    seed = {
        "pingone": {
            "organizations": [{"name": "Schemathesis", "environments": [
                {"id": ADMIN_ENVIRONMENT, "name": "Administrators", "type": "PRODUCTION"},
                {"id": TARGET_ENVIRONMENT, "name": "Target", "type": "SANDBOX"},
            ]}],
            "workers": [{"id": ADMIN_WORKER, "name": "schemathesis-admin",
                         "environment": ADMIN_ENVIRONMENT, "secret": worker_secret,
                         "roles": [{"role": "Environment Admin", "scope": TARGET_ENVIRONMENT}]}],
        },
        "aic": {
            "tenants": [{"name": TENANT, "tier": "development", "serviceAccounts": [{
                "id": SERVICE_ACCOUNT, "name": "schemathesis",
                "scopes": ["fr:am:*", "fr:idc:esv:*", "fr:idc:promotion:*"], "jwk": public_jwk,
            }]}],
            "timings": {"restartMs": 200, "lockMs": 100, "promotionMs": 100},
        },
    }
    seed_file = work / "seed.json"
    seed_file.write_text(json.dumps(seed))
    process = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--config", str(seed_file)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    pingone = process.stdout.readline().strip()
    aic_line = process.stdout.readline().split()
    if not pingone.startswith("http://127.0.0.1:") or aic_line[:2] != ["aic", TENANT]:
        process.kill()
        raise SystemExit("the simulator did not print its URLs")
    return process, pingone, aic_line[2]


def pingone_fixtures(pingone: str, worker_secret: str) -> tuple[str, dict]:
    """A token of the admin worker, and an application with a role assignment to pin the path
    parameters to."""
    token = call("POST", f"{pingone}/{ADMIN_ENVIRONMENT}/as/token",
                 form={"grant_type": "client_credentials"},
                 basic=(ADMIN_WORKER, worker_secret))["access_token"]
    api = f"{pingone}/v1/environments/{TARGET_ENVIRONMENT}"
    application = call("POST", f"{api}/applications", token, {
        "name": "schemathesis-worker", "enabled": True, "type": "WORKER",
        "protocol": "OPENID_CONNECT", "tokenEndpointAuthMethod": "CLIENT_SECRET_BASIC",
        "grantTypes": ["CLIENT_CREDENTIALS"],
    })
    roles = call("GET", f"{pingone}/v1/roles", token)["_embedded"]["roles"]
    role = next(r["id"] for r in roles if r["name"] == "Identity Data Admin")
    assignment = call("POST", f"{api}/applications/{application['id']}/roleAssignments", token, {
        "role": {"id": role}, "scope": {"type": "ENVIRONMENT", "id": TARGET_ENVIRONMENT},
    })
    return token, {
        "path.environmentID": TARGET_ENVIRONMENT,
        "path.applicationID": application["id"],
        "path.roleAssignmentID": assignment["id"],
    }


def aic_fixtures(aic: str, key: Path) -> tuple[str, dict]:
    """A service-account token (AIC's JWT bearer grant), and a variable and a secret to pin the
    path parameters to."""
    audience = f"{aic}/am/oauth2/access_token"
    token = call("POST", audience, form={
        "client_id": "service-account",
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": signed_assertion(key, audience),
        "scope": "fr:am:* fr:idc:esv:* fr:idc:promotion:*",
    })["access_token"]
    v2 = {"Accept-API-Version": "protocol=1.0,resource=1.0"}
    call("PUT", f"{aic}/environment/variables/esv-schemathesis-url", token, {
        "valueBase64": base64.b64encode(b"https://example.test").decode(),
        "description": "pinned by the schemathesis check", "expressionType": "string",
    }, headers=v2)
    call("PUT", f"{aic}/environment/secrets/esv-schemathesis-secret", token, {
        "valueBase64": base64.b64encode(b"not-a-real-secret").decode(),
        "description": "pinned by the schemathesis check", "encoding": "generic",
        "useInPlaceholders": True,
    }, headers=v2)
    return token, {
        "path.variableId": "esv-schemathesis-url",
        "path.secretId": "esv-schemathesis-secret",
    }


def run_schemathesis(name: str, mode: str, spec: Path, base_url: str, token: str,
                     parameters: dict, work: Path, max_examples: int, max_time: int) -> int:
    """One `st run` in one generation mode; its exit code (0: nothing found)."""
    config = work / f"{name}.toml"
    # The token reaches schemathesis through the environment, never a command line.
    lines = ['headers = { Authorization = "Bearer ${SCHEMATHESIS_TOKEN}" }', "[parameters]"]
    lines += [f'"{k}" = "{v}"' for k, v in parameters.items()]
    config.write_text("\n".join(lines) + "\n")
    report_dir = work / f"{name}-{mode}-report"
    shutil.rmtree(report_dir, ignore_errors=True)
    env = {**os.environ, "SCHEMATHESIS_TOKEN": token}
    command = [
        "st", "--config-file", str(config), "run", str(spec), "--url", base_url,
        "--mode", mode, "--checks", POSITIVE_CHECKS if mode == "positive" else NEGATIVE_CHECKS,
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(max_examples), "--max-time", str(max_time),
        "--workers", "1", "--seed", "1", "--request-timeout", "10",
        "--report", "ndjson", "--report-dir", str(report_dir),
        "--continue-on-failure", "--no-color", "--output-sanitize", "true",
    ]
    print(f"==> schemathesis: {name}, {mode} inputs ({len(OPERATIONS[name])} operations)",
          flush=True)
    # Run in the work folder: schemathesis keeps its example database in the current one.
    result = subprocess.run(command, env=env, text=True, capture_output=True, cwd=work)
    (work / f"{name}-{mode}.log").write_text(result.stdout)
    # The failures and the summary; the whole output stays in the work folder.
    start = result.stdout.find("=== FAILURES ===")
    print(result.stdout[start - 40 if start >= 40 else 0:] if start >= 0 else result.stdout[-3000:])
    if result.returncode not in (0, 1):
        print(result.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"schemathesis could not run against the {name} simulator")
    return result.returncode


def main() -> int:
    binary, specs, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]).resolve()
    work.mkdir(parents=True, exist_ok=True)
    max_examples = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))
    max_time = int(os.environ.get("SCHEMATHESIS_MAX_TIME", "120"))
    key, public_jwk = rsa_key(work)
    worker_secret = b64url(os.urandom(32))
    process, pingone, aic = start_simulator(binary, work, public_jwk, worker_secret)
    failed = []
    try:
        pingone_token, pingone_parameters = pingone_fixtures(pingone, worker_secret)
        aic_token, aic_parameters = aic_fixtures(aic, key)
        for name, base, token, parameters in [
            ("pingone", f"{pingone}/v1", pingone_token, pingone_parameters),
            ("aic", aic, aic_token, aic_parameters),
        ]:
            spec = reduced_spec(name, specs, work)
            for mode in ("positive", "negative"):
                if run_schemathesis(name, mode, spec, base, token, parameters, work,
                                    max_examples, max_time) != 0:
                    failed.append(f"{name} ({mode} inputs)")
    finally:
        process.terminate()
        process.wait(timeout=10)
    if failed:
        print(f"schemathesis found answers outside the spec: {', '.join(failed)}")
        return 1
    print("schemathesis: both simulators answer within their specs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
