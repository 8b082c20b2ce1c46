#!/usr/bin/env python
"""How long ``manage.py jarm_conformance`` takes for 10 clients (a deployment pipeline step).

    python benchmarks/conformance.py              # 10 clients, 3 runs
    python benchmarks/conformance.py --clients 20 --runs 5

The benchmark project's settings (SQLite in memory, local-memory cache). The 10 clients mix what
a deployment has: ES256, PS256, EdDSA and RS256 (DOT's OIDC key) signing, a hybrid client, one
encrypted with a key derived from its secret (dir), one encrypted to its RSA key, with and
without the consent page. Each run is the whole command: the server checks, then every client in
every JWT mode with a success, access_denied and invalid_scope, all rolled back. Wall-clock time.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from jwcrypto import jwk  # noqa: E402
from oauth2_provider.models import get_application_model  # noqa: E402

from django_jarm import keys  # noqa: E402
from django_jarm.models import ClientSettings, ServerKey  # noqa: E402

Application = get_application_model()
SECRET = "benchmark-secret-" + "x" * 48

#: (response type, signing alg, encryption alg or "", consent page shown)
CLIENT_KINDS = [
    ("code", "ES256", "", False),
    ("code", "PS256", "", True),
    ("code", "EdDSA", "", False),
    ("code", "RS256", "", False),
    ("code id_token", "ES256", "", True),
    ("code", "ES256", "dir", False),
    ("code", "PS256", "RSA-OAEP-256", False),
    ("code", "ES256", "", True),
    ("code", "PS256", "", False),
    ("code id_token", "EdDSA", "dir", False),
]
GRANTS = {"code": Application.GRANT_AUTHORIZATION_CODE, "code id_token": Application.GRANT_OPENID_HYBRID}


def build(count: int) -> None:
    call_command("migrate", interactive=False, verbosity=0)
    owner = get_user_model().objects.create_user("owner")
    for alg in ("ES256", "PS256", "EdDSA"):
        keys.generate_server_key(alg)
    ServerKey.objects.update(created=ServerKey.objects.earliest("created").created.replace(year=2000))
    client_key = jwk.JWK.generate(kty="RSA", size=2048)
    public = {**client_key.export_public(as_dict=True), "kid": "rp-enc", "use": "enc", "alg": "RSA-OAEP-256"}
    for index in range(count):
        response_type, alg, encryption, consent = CLIENT_KINDS[index % len(CLIENT_KINDS)]
        app = Application.objects.create(
            client_id=f"bench-{index:02d}",
            name=f"bench {index}",
            user=owner,
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=GRANTS[response_type],
            redirect_uris="https://rp.example/cb",
            skip_authorization=not consent,
            hash_client_secret=False,
            client_secret=SECRET,
            algorithm=Application.RS256_ALGORITHM,
        )
        settings = {"authorization_signed_response_alg": alg}
        if encryption == "dir":
            settings.update(
                authorization_encrypted_response_alg="dir", authorization_encrypted_response_enc="A128CBC-HS256"
            )
        elif encryption:
            settings.update(authorization_encrypted_response_alg=encryption, jwks={"keys": [public]})
        ClientSettings.objects.create(application=app, **settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    build(options.clients)
    times = []
    for _ in range(options.runs):
        out = io.StringIO()
        started = time.perf_counter()
        call_command("jarm_conformance", "--json", stdout=out)  # raises (exit 1) on any FAIL
        times.append(time.perf_counter() - started)
    document = json.loads(out.getvalue())
    summary = document["summary"]
    flows = len({(r["client_id"], r["mode"], r["outcome"]) for r in document["results"] if r["outcome"]})
    median = statistics.median(times)
    print(f"{options.clients} clients, {flows} flows, results {summary}")
    print(f"wall time per run: median {median:.2f} s (runs: {', '.join(f'{t:.2f}' for t in times)})")
    print(f"per client: {median / options.clients * 1000:.0f} ms; per flow: {median / flows * 1000:.1f} ms")


if __name__ == "__main__":
    main()
