#!/usr/bin/env python
"""django_jarm performance benchmarks.

    python benchmarks/run.py              # full run, 1.5 to 2.5 minutes
    python benchmarks/run.py --quick      # smoke run, about 30 seconds
    python benchmarks/run.py --profile    # the run, then a cProfile of every measured JARM path

Every figure is a ratio against a baseline measured in the same run, in the same process. The
calls of all variants of a figure alternate (A B C A B C ...), a round keeps the median call of
each variant, and a figure is the median over rounds of the ratio within each round. Absolute
times are printed for information only. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402
from django.test import Client  # noqa: E402
from jwcrypto import jwe, jwk, jws  # noqa: E402
from jwcrypto.common import json_encode  # noqa: E402
from oauth2_provider.models import get_application_model, get_grant_model  # noqa: E402

from django_jarm import client_keys, clients, keys, tokens  # noqa: E402
from django_jarm.models import ClientSettings, ServerKey  # noqa: E402

Application = get_application_model()
Grant = get_grant_model()

ISSUER = "http://testserver/o"
REDIRECT_URI = "https://rp.example/cb"
# RFC 7636 appendix B: a fixed verifier/challenge pair (the code is never redeemed here).
CODE_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
RESPONSE_PARAMS = [("code", "Ssp5fmHGZ9lTKm2NPJvhbEFWXUCbQx"), ("state", "af0ifjsldkj")]

ENC_ALG, ENC_ENC = "RSA-OAEP-256", "A128CBC-HS256"
#: The signing algorithm of the encrypted (nested JWT) case: ES256, the cheapest signature, so
#: that the cost of the encryption step is not hidden under an RSA signature.
NESTED_SIGNING_ALG = "ES256"


@dataclass(frozen=True)
class Mode:
    name: str
    #: Rounds of figure 2 (authorization requests) and of figures 1 and 3 (cheaper calls).
    rounds: int
    cheap_rounds: int
    #: Calls of each variant per round: bare JOSE operations, JWKS/discovery, authorization requests.
    jose_calls: int
    metadata_calls: int
    request_calls: int
    #: Figure 4: rounds, calls per block, and whether every one of the many clients is warmed first.
    scaling_rounds: int
    scaling_calls: int
    warm_all_clients: bool
    many_clients: int = 1000


FULL = Mode(
    "full",
    rounds=31,
    cheap_rounds=45,
    jose_calls=40,
    metadata_calls=40,
    request_calls=10,
    scaling_rounds=20,
    scaling_calls=8,
    warm_all_clients=True,
)
QUICK = Mode(
    "quick",
    rounds=9,
    cheap_rounds=15,
    jose_calls=20,
    metadata_calls=20,
    request_calls=5,
    scaling_rounds=6,
    scaling_calls=5,
    warm_all_clients=False,
)


# Timing ---------------------------------------------------------------------------------


@dataclass
class Variant:
    """One thing to time: ``call`` is timed; ``enter`` (untimed) switches to its configuration."""

    call: Callable[[], Any]
    enter: Callable[[], None] | None = None
    warmup: int = 3


#: The clock: the CPU time of this thread by default (time while the process waits for a CPU
#: that other processes hold does not count; the benchmark does no I/O), or wall time (--wall).
_clock: Callable[[], float] = time.thread_time
_clock_overhead = 0.0


def use_clock(clock: Callable[[], float]) -> None:
    """Time with ``clock`` from now on; its own cost (two readings) is measured and subtracted."""
    global _clock, _clock_overhead
    _clock, _clock_overhead = clock, 0.0
    _clock_overhead = median([_timed(lambda: None) for _ in range(2000)])


def _timed(call: Callable[[], Any]) -> float:
    clock = _clock
    start = clock()
    call()
    return clock() - start - _clock_overhead


def _rotation(names: list[str], index: int) -> list[str]:
    """The order of round ``index``: rotated, and reversed every other round."""
    shift = index % len(names)
    order = names[shift:] + names[:shift]
    return order[::-1] if index % 2 else order


def measure(
    variants: dict[str, Variant], rounds: int, calls: int, *, before_round: Callable[[], None] | None = None
) -> dict[str, list[float]]:
    """Seconds per call of every variant: per round, the median of its ``calls`` calls.

    Calls alternate between the variants (A B C A B C ...), so a burst of load from elsewhere
    on the machine hits every variant alike, and the median drops the calls it hit hardest.
    The garbage collector runs between rounds, not during them (as in timeit).
    """
    names = list(variants)
    for variant in variants.values():
        for _ in range(variant.warmup):
            variant.call()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        if before_round is not None:
            before_round()
        order = _rotation(names, index)
        times: dict[str, list[float]] = {name: [] for name in names}
        gc.collect()
        gc.disable()
        try:
            for _ in range(calls):
                for name in order:
                    times[name].append(_timed(variants[name].call))
        finally:
            gc.enable()
        for name in names:
            samples[name].append(median(times[name]))
    return samples


def measure_configurations(variants: dict[str, Variant], rounds: int, calls: int) -> dict[str, list[float]]:
    """Like :func:`measure` for variants that need ``enter()`` first: one block of calls per
    variant per round, the blocks alternating round after round."""
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        for name in _rotation(names, index):
            variant = variants[name]
            if variant.enter is not None:
                variant.enter()
            for _ in range(variant.warmup):
                variant.call()
            gc.collect()
            gc.disable()
            try:
                times = [_timed(variant.call) for _ in range(calls)]
            finally:
                gc.enable()
            samples[name].append(median(times))
    return samples


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """Median over rounds of numerator/denominator measured in the same round."""
    return median([a / b for a, b in zip(numerator, denominator, strict=True)])


def paired_difference(minuend: Sequence[float], subtrahend: Sequence[float]) -> list[float]:
    return [a - b for a, b in zip(minuend, subtrahend, strict=True)]


def us(seconds: float) -> str:
    return f"{seconds * 1e6:9.1f} µs"


# Results --------------------------------------------------------------------------------


@dataclass
class Figure:
    key: str
    label: str
    ratio: float
    #: "<=" or ">=" (or "" for figures reported for information, without a target).
    op: str
    target: float
    details: list[str] = field(default_factory=list)

    @property
    def met(self) -> bool | None:
        if not self.op:
            return None
        return self.ratio <= self.target if self.op == "<=" else self.ratio >= self.target

    @property
    def verdict(self) -> str:
        return {True: "met", False: "NOT MET", None: "info"}[self.met]

    @property
    def target_text(self) -> str:
        return f"{'≤' if self.op == '<=' else '≥'} {self.target:.2f}" if self.op else "—"


def print_figure(figure: Figure) -> None:
    print(f"  {figure.key:<4} {figure.label:<60} ratio {figure.ratio:5.2f}  {figure.target_text:<6} {figure.verdict}")
    for line in figure.details:
        print(f"          {line}")


# Data -----------------------------------------------------------------------------------


@dataclass
class World:
    """What the run set up: a user, server keys, clients, their keys, and logged-in browsers."""

    user: Any
    browser: Client
    apps: dict[str, Any]
    server_keys: dict[str, ServerKey]
    client_private_key: jwk.JWK
    extra_server_kids: list[str] = field(default_factory=list)


def _rsa_public_jwk(key: jwk.JWK, kid: str) -> dict[str, Any]:
    public: dict[str, Any] = json.loads(key.export_public())
    public.update({"kid": kid, "use": "enc", "alg": ENC_ALG})
    return public


def _new_app(user: Any, name: str, jarm: dict[str, Any] | None) -> Any:
    app = Application.objects.create(
        name=name,
        user=user,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=REDIRECT_URI,
        skip_authorization=True,
        algorithm=Application.RS256_ALGORITHM,
    )
    if jarm is not None:
        ClientSettings.objects.create(application=app, **jarm)
    return Application.objects.select_related("jarm").get(pk=app.pk)


def encrypted_client_settings(public: dict[str, Any]) -> dict[str, Any]:
    return {
        "authorization_signed_response_alg": NESTED_SIGNING_ALG,
        "authorization_encrypted_response_alg": ENC_ALG,
        "authorization_encrypted_response_enc": ENC_ENC,
        "jwks": {"keys": [public]},
    }


def build_world() -> World:
    call_command("migrate", interactive=False, verbosity=0)
    user = get_user_model().objects.create_user("bench", "bench@example.com", "bench-password")
    server_keys = {alg: keys.generate_server_key(alg) for alg in ("ES256", "PS256")}
    client_private_key = jwk.JWK.generate(kty="RSA", size=2048)
    public = _rsa_public_jwk(client_private_key, "rp-enc-1")
    apps = {
        "ES256": _new_app(user, "ES256 client", {"authorization_signed_response_alg": "ES256"}),
        "PS256": _new_app(user, "PS256 client", {"authorization_signed_response_alg": "PS256"}),
        "nested": _new_app(user, "encrypted client", encrypted_client_settings(public)),
    }
    browser = Client()
    browser.force_login(user)
    return World(user, browser, apps, server_keys, client_private_key)


def authorize_url(prefix: str, app: Any, response_mode: str) -> str:
    query = [
        ("client_id", app.client_id),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "openid read"),
        ("state", "af0ifjsldkj"),
        ("nonce", "n-0S6_WzA2Mj"),
        ("code_challenge", CODE_CHALLENGE),
        ("code_challenge_method", "S256"),
        ("response_mode", response_mode),
    ]
    return f"{prefix}?{urlencode(query)}"


def check_authorization(browser: Client, url: str, *, jwt: bool) -> None:
    """The request answers what the benchmark claims to measure (a redirect with a code or a JWT)."""
    response = browser.get(url)
    assert response.status_code == 302, (url, response.status_code)
    names = {name for name, _ in parse_qsl(urlsplit(response["Location"]).query)}
    assert names == ({"response"} if jwt else {"code", "state"}), names


def get(browser: Client, url: str) -> Callable[[], Any]:
    request = browser.get

    def call() -> Any:
        return request(url)

    return call


# Bare jwcrypto: the same JOSE operations on already-parsed keys --------------------------


def bare_claims(client_id: str) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": client_id, "exp": now + 120, "iat": now, **dict(RESPONSE_PARAMS)}


def bare_sign(key: jwk.JWK, alg: str, kid: str, client_id: str) -> str:
    token = jws.JWS(json_encode(bare_claims(client_id)).encode("utf-8"))
    token.add_signature(key, alg=alg, protected=json_encode({"alg": alg, "kid": kid}))
    return str(token.serialize(compact=True))


def bare_encrypt(signed: str, key: jwk.JWK, kid: str) -> str:
    header = {"alg": ENC_ALG, "enc": ENC_ENC, "cty": "JWT", "kid": kid}
    token = jwe.JWE(signed.encode("ascii"), protected=json_encode(header))
    token.add_recipient(key)
    return str(token.serialize(compact=True))


@dataclass
class JoseCalls:
    """The JOSE work of one response, through django_jarm and bare, keyed by case."""

    ours: dict[str, Callable[[], str]]
    bare: dict[str, Callable[[], str]]


def jose_calls(world: World) -> JoseCalls:
    ours: dict[str, Callable[[], str]] = {}
    bare: dict[str, Callable[[], str]] = {}

    def claims(client_id: str) -> dict[str, Any]:
        return tokens.response_claims(RESPONSE_PARAMS, issuer=ISSUER, client_id=client_id, lifetime=120)

    for case, alg in (("ES256", "ES256"), ("PS256", "PS256"), ("nested", NESTED_SIGNING_ALG)):
        app = world.apps[case]
        client_id = app.client_id
        signing_key = keys.get_signing_key(alg, app)  # obtained once, as the figure asks
        parsed = jwk.JWK.from_json(signing_key.jwk.export_private())  # an independent, parsed key
        if case != "nested":
            ours[case] = lambda k=signing_key, c=client_id: tokens.sign(claims(c), k)
            bare[case] = lambda k=parsed, a=alg, kid=signing_key.kid, c=client_id: bare_sign(k, a, kid, c)
            continue
        encryption_key = client_keys.get_encryption_key(app, app.jarm)
        public = jwk.JWK(**app.jarm.jwks["keys"][0])
        ours[case] = lambda k=signing_key, e=encryption_key, c=client_id: tokens.encrypt(tokens.sign(claims(c), k), e)
        bare[case] = lambda k=parsed, a=alg, kid=signing_key.kid, c=client_id, p=public, e=encryption_key.kid: (
            bare_encrypt(bare_sign(k, a, kid, c), p, e or "")
        )
    # Sanity: both produce tokens of the same shape (3 or 5 parts) that verify/decrypt.
    for case in ours:
        assert ours[case]().count(".") == bare[case]().count("."), case
    return JoseCalls(ours, bare)


CASE_LABELS = {"ES256": "ES256", "PS256": "PS256", "nested": f"{NESTED_SIGNING_ALG} + {ENC_ALG}"}


# Figures --------------------------------------------------------------------------------


def figure_1(world: World, jose: JoseCalls, mode: Mode) -> list[Figure]:
    variants: dict[str, Variant] = {}
    for case in CASE_LABELS:
        variants[f"ours {case}"] = Variant(jose.ours[case])
        variants[f"bare {case}"] = Variant(jose.bare[case])
    samples = measure(variants, mode.cheap_rounds, mode.jose_calls)
    figures = []
    for number, (case, label) in enumerate(CASE_LABELS.items(), 1):
        ours, bare = samples[f"ours {case}"], samples[f"bare {case}"]
        what = "sign + encrypt" if case == "nested" else "claims + sign"
        figures.append(
            Figure(
                f"1.{number}",
                f"{label}: {what}, django_jarm / jwcrypto",
                paired_ratio(ours, bare),
                "<=",
                1.10,
                [f"django_jarm {us(median(ours))}   bare jwcrypto {us(median(bare))}"],
            )
        )
    return figures


def figure_2(world: World, jose: JoseCalls, mode: Mode) -> tuple[list[Figure], dict[str, str]]:
    browser = world.browser
    urls = {
        "plain DOT": authorize_url("/dot/authorize/", world.apps["ES256"], "query"),
        "plain JARM view": authorize_url("/o/authorize/", world.apps["ES256"], "query"),
        **{case: authorize_url("/o/authorize/", world.apps[case], "query.jwt") for case in CASE_LABELS},
    }
    for name, url in urls.items():
        check_authorization(browser, url, jwt=not name.startswith("plain"))
    variants = {name: Variant(get(browser, url)) for name, url in urls.items()}
    for case in CASE_LABELS:
        variants[f"bare {case}"] = Variant(jose.bare[case])

    def clear_grants() -> None:
        # Each request stores a grant: keep the table small (every variant sees the same table).
        Grant.objects.all().delete()

    samples = measure(variants, mode.rounds, mode.request_calls, before_round=clear_grants)
    plain = samples["plain DOT"]
    figures = []
    for number, (case, label) in enumerate(CASE_LABELS.items(), 1):
        jarm, bare = samples[case], samples[f"bare {case}"]
        added = paired_difference(jarm, plain)
        figures.append(
            Figure(
                f"2.{number}",
                f"{label}: time JARM adds / bare jwcrypto cost",
                paired_ratio(added, bare),
                "<=",
                1.25,
                [
                    f"plain DOT {us(median(plain))}   query.jwt {us(median(jarm))}   "
                    f"added {us(median(added))}   bare jwcrypto {us(median(bare))}",
                    f"throughput: plain req/s ÷ JARM req/s = {paired_ratio(jarm, plain):.2f} "
                    f"({1 / median(plain):.0f} vs {1 / median(jarm):.0f} req/s)",
                ],
            )
        )
    plain_view = samples["plain JARM view"]
    figures.append(
        Figure(
            "2.4",
            "response_mode=query: JARM view / DOT's view (no JWT)",
            paired_ratio(plain_view, plain),
            "",
            0.0,
            [
                f"DOT {us(median(plain))}   JARM view {us(median(plain_view))}   "
                f"added {us(median(paired_difference(plain_view, plain)))}"
            ],
        )
    )
    return figures, urls


def figure_3(world: World, mode: Mode) -> list[Figure]:
    anonymous = Client()
    urls = {
        "JWKS ours": "/o/.well-known/jwks.json",
        "JWKS DOT": "/dot/.well-known/jwks.json",
        "discovery ours": "/o/.well-known/openid-configuration",
        "discovery DOT": "/dot/.well-known/openid-configuration",
    }
    documents = {}
    for name, url in urls.items():
        response = anonymous.get(url)
        assert response.status_code == 200, (url, response.status_code)
        documents[name] = response.json()
    variants = {name: Variant(get(anonymous, url)) for name, url in urls.items()}
    samples = measure(variants, mode.cheap_rounds, mode.metadata_calls)
    ours_keys, dot_keys = len(documents["JWKS ours"]["keys"]), len(documents["JWKS DOT"]["keys"])
    ours_members, dot_members = len(documents["discovery ours"]), len(documents["discovery DOT"])
    return [
        Figure(
            "3.1",
            "JWKS: our throughput / DOT's",
            paired_ratio(samples["JWKS DOT"], samples["JWKS ours"]),
            ">=",
            1.0,
            [
                f"DOT {us(median(samples['JWKS DOT']))} ({dot_keys} key)   "
                f"ours {us(median(samples['JWKS ours']))} ({ours_keys} keys: DOT's + ES256 + PS256)"
            ],
        ),
        Figure(
            "3.2",
            "discovery: our throughput / DOT's",
            paired_ratio(samples["discovery DOT"], samples["discovery ours"]),
            ">=",
            1.0,
            [
                f"DOT {us(median(samples['discovery DOT']))} ({dot_members} members)   "
                f"ours {us(median(samples['discovery ours']))} ({ours_members} members)"
            ],
        ),
    ]


@dataclass
class ScalingSetup:
    """A second in-memory database holding ``count`` clients, swapped in as ``default``."""

    connection: Any
    browser: Client
    urls: list[str]
    cursor: int = 0


def build_many_clients(world: World, count: int) -> ScalingSetup:
    """Same user and ES256 key as the main database, and ``count`` encrypted clients."""
    main = connections["default"]
    other = connections.create_connection("default")
    connections["default"] = other
    try:
        call_command("migrate", interactive=False, verbosity=0)
        user = get_user_model().objects.create_user("bench", "bench@example.com", "bench-password")
        es256 = world.server_keys["ES256"]
        ServerKey.objects.create(
            **{f.attname: getattr(es256, f.attname) for f in ServerKey._meta.concrete_fields if not f.primary_key}
        )
        # A few distinct RSA keys, each client under its own kid (generating 1,000 RSA keys is slow).
        pool = [world.client_private_key, *(jwk.JWK.generate(kty="RSA", size=2048) for _ in range(3))]
        apps = Application.objects.bulk_create(
            Application(
                name=f"client {index}",
                user=user,
                client_type=Application.CLIENT_CONFIDENTIAL,
                authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
                redirect_uris=REDIRECT_URI,
                skip_authorization=True,
                hash_client_secret=False,
                algorithm=Application.RS256_ALGORITHM,
            )
            for index in range(count)
        )
        apps = list(Application.objects.order_by("pk"))
        ClientSettings.objects.bulk_create(
            ClientSettings(
                application=app,
                **encrypted_client_settings(_rsa_public_jwk(pool[index % len(pool)], f"rp-{index}-enc")),
            )
            for index, app in enumerate(apps)
        )
        browser = Client()
        browser.force_login(user)
        urls = [authorize_url("/o/authorize/", app, "query.jwt") for app in apps]
        check_authorization(browser, urls[0], jwt=True)
    finally:
        connections["default"] = main
    return ScalingSetup(other, browser, urls)


def figure_4(world: World, mode: Mode) -> list[Figure]:
    """Cost per response (the encrypted client's request) with more keys published, more clients."""
    # 99 more ES256 keys, "retired" (not published) until a configuration publishes them.
    if not world.extra_server_kids:
        for _ in range(99):
            world.extra_server_kids.append(keys.generate_server_key("ES256", status=ServerKey.Status.NEXT).kid)
    extra = world.extra_server_kids
    ps256 = world.server_keys["PS256"].kid
    main = connections["default"]
    many = build_many_clients(world, mode.many_clients)
    url = authorize_url("/o/authorize/", world.apps["nested"], "query.jwt")

    def published(count: int) -> Callable[[], None]:
        def enter() -> None:
            connections["default"] = main
            # Only the active ES256 key plus count - 1 others (retiring) are published.
            ServerKey.objects.filter(kid__in=[ps256, *extra[count - 1 :]]).update(status=ServerKey.Status.RETIRED)
            ServerKey.objects.filter(kid__in=extra[: count - 1]).update(status=ServerKey.Status.RETIRING)
            Grant.objects.all().delete()
            keys.bump_generation()
            # The two databases reuse application ids: drop client settings cached from the other.
            clients.forget()

        return enter

    def enter_many() -> None:
        connections["default"] = many.connection
        Grant.objects.all().delete()
        keys.bump_generation()
        clients.forget()

    one_client = get(world.browser, url)
    many_get = many.browser.get

    def round_robin() -> Any:
        index = many.cursor
        many.cursor = (index + 1) % len(many.urls)
        return many_get(many.urls[index])

    if mode.warm_all_clients:
        # One request per client first: per-client caches, if any, then hold every client.
        enter_many()
        for _ in many.urls:
            round_robin()
    variants = {
        "1 key, 1 client": Variant(one_client, published(1)),
        "10 keys": Variant(one_client, published(10)),
        "100 keys": Variant(one_client, published(100)),
        f"{mode.many_clients} clients": Variant(round_robin, enter_many),
    }
    try:
        samples = measure_configurations(variants, mode.scaling_rounds, mode.scaling_calls)
        published(1)()
        jwks_size = len(Client().get("/o/.well-known/jwks.json").json()["keys"])
        published(100)()
        jwks_size_100 = len(Client().get("/o/.well-known/jwks.json").json()["keys"])
    finally:
        connections["default"] = main
        ServerKey.objects.filter(kid__in=extra).update(status=ServerKey.Status.RETIRED)
        ServerKey.objects.filter(kid=ps256).update(status=ServerKey.Status.ACTIVE)
        keys.bump_generation()
    base = samples["1 key, 1 client"]
    figures = []
    for number, name in enumerate(list(variants)[1:], 1):
        figures.append(
            Figure(
                f"4.{number}",
                f"cost per response, {name} / 1 key, 1 client",
                paired_ratio(samples[name], base),
                "<=",
                1.10,
                [f"1 key, 1 client {us(median(base))}   {name} {us(median(samples[name]))}"],
            )
        )
    figures[0].details.append(f"JWKS holds {jwks_size} keys with 1 server key published, {jwks_size_100} with 100")
    return figures


# Profiles -------------------------------------------------------------------------------


def profile(label: str, call: Callable[[], Any], calls: int, *, limit: int = 14) -> None:
    """cProfile of ``calls`` calls: django_jarm's functions, then the top functions by own time.

    Times are per call of ``call`` and include the profiler's overhead, which inflates pure
    Python code (the ORM) more than work done in C (the cryptography).
    """
    for _ in range(3):
        call()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        call()
    profiler.disable()
    stats: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in stats.values())

    def where(function: tuple[str, int, str]) -> str:
        filename, line, name = function
        short = filename.replace(str(ROOT) + os.sep, "").split("site-packages" + os.sep)[-1]
        return f"{short}:{line}({name})"

    def rows(chosen: list[tuple[tuple[str, int, str], tuple[Any, ...]]]) -> None:
        print(f"    {'cum µs':>9} {'own µs':>8} {'calls':>6}  function   (per request)")
        for function, (_, ncalls, own, cumulative, _callers) in chosen[:limit]:
            print(
                f"    {cumulative / calls * 1e6:9.1f} {own / calls * 1e6:8.1f} {ncalls / calls:6.1f}  {where(function)}"
            )

    print(f"\n--- profile: {label} ({calls} calls, {total / calls * 1e6:.0f} µs per call under the profiler) ---")
    ours = sorted(
        ((f, v) for f, v in stats.items() if f"{os.sep}django_jarm{os.sep}" in f[0]), key=lambda item: -item[1][3]
    )
    if ours:
        rows(ours)
    print("    top by own time:")
    rows(sorted(stats.items(), key=lambda item: -item[1][2]))


def profiles(world: World, urls: dict[str, str]) -> None:
    browser, anonymous = world.browser, Client()
    for name, url in urls.items():
        profile(f"GET authorize, {name}", get(browser, url), 300)
        Grant.objects.all().delete()
    for url in ("/o/.well-known/jwks.json", "/o/.well-known/openid-configuration"):
        profile(f"GET {url}", get(anonymous, url), 1000)


# Main -----------------------------------------------------------------------------------


def environment() -> str:
    packages = ("Django", "django-oauth-toolkit", "oauthlib", "jwcrypto", "cryptography")
    versions = ", ".join(f"{name} {version(name)}" for name in packages)
    return f"Python {platform.python_version()}, {versions}; {os.cpu_count()} CPUs"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shorter batches (a smoke run)")
    parser.add_argument("--profile", action="store_true", help="then print a cProfile of every measured JARM path")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target is not met")
    parser.add_argument("--wall", action="store_true", help="time with the wall clock instead of the thread's CPU time")
    args = parser.parse_args(argv)
    mode = QUICK if args.quick else FULL
    use_clock(time.perf_counter if args.wall else time.thread_time)
    started = time.perf_counter()
    print(f"django_jarm benchmarks ({mode.name}): {environment()}")
    print(
        f"clock: {'wall' if args.wall else 'CPU time of the thread'}; "
        f"interleaved rounds: {mode.cheap_rounds} for figures 1 and 3, {mode.rounds} for figure 2, "
        f"{mode.scaling_rounds} for figure 4; each figure is the median over rounds of a ratio within a round\n"
    )
    world = build_world()
    jose = jose_calls(world)
    urls: dict[str, str] = {}

    def second() -> list[Figure]:
        figures, measured = figure_2(world, jose, mode)
        urls.update(measured)
        return figures

    sections: list[tuple[str, Callable[[], list[Figure]]]] = [
        (
            f"[1] Building a response: django_jarm vs the same JOSE operation in bare jwcrypto "
            f"(encryption: {ENC_ALG}/{ENC_ENC})",
            lambda: figure_1(world, jose, mode),
        ),
        ("[2] GET /o/authorize/ (code + PKCE, logged in, skip_authorization): query.jwt vs DOT's query", second),
        ("[3] JWKS and discovery vs DOT's own views (GET through the handler stack)", lambda: figure_3(world, mode)),
        (
            f"[4] Scaling: the encrypted client's response with 1, 10, 100 server keys published "
            f"and with {mode.many_clients:,} clients",
            lambda: figure_4(world, mode),
        ),
    ]
    figures: list[Figure] = []
    for title, produce in sections:
        print(title)
        for figure in produce():
            print_figure(figure)
            figures.append(figure)
        print()
    print("Summary")
    print(f"  {'figure':<65} {'ratio':>5}  {'target':<6} result")
    for figure in figures:
        print(f"  {figure.key:<4} {figure.label:<60} {figure.ratio:5.2f}  {figure.target_text:<6} {figure.verdict}")
    unmet = [figure for figure in figures if figure.met is False]
    targets = sum(figure.met is not None for figure in figures)
    print(f"\n{targets - len(unmet)} of {targets} targets met; took {time.perf_counter() - started:.0f} s")
    if args.profile:
        profiles(world, {k: v for k, v in urls.items() if k != "plain JARM view"})
    return 1 if args.check and unmet else 0


if __name__ == "__main__":
    sys.exit(main())
