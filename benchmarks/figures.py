"""The figures: one function per section, each saying what it measures against what, and its
target. A figure function takes the world and the mode and returns :class:`Figure` values.

To add a figure: write a function like these (variants -> ``measure`` -> a per-round ratio or
difference -> ``Figure``) and list it in ``SECTIONS`` at the bottom.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import connections
from django.test import Client

from benchmarks.stats import (
    Figure,
    Variant,
    measure,
    measure_configurations,
    measure_pairs,
    median,
    paired_ratio,
    per_round,
    quartile,
    us,
)
from benchmarks.world import (
    CASE_LABELS,
    BenchmarkPlanner,
    Grant,
    World,
    authorize_url,
    bare_crypto,
    build_many_clients,
    check_authorization,
    forget_cached_configuration,
    get,
    response_token,
    use_snapshot_of,
)
from django_jarm import keys
from django_jarm.models import ServerKey


@dataclass(frozen=True)
class Mode:
    """How long to measure: rounds per figure and calls of each variant per round."""

    name: str
    jose_rounds: int
    jose_calls: int
    request_rounds: int
    request_calls: int
    metadata_rounds: int
    metadata_calls: int
    scaling_rounds: int
    scaling_calls: int
    #: Figure 4: whether each of the many clients is requested once before timing.
    warm_all_clients: bool
    many_clients: int = 1000

    def scaled(self, factor: float) -> Mode:
        """The same mode with ``factor`` times the rounds (a busy machine wants more)."""

        def more(rounds: int) -> int:
            return max(3, round(rounds * factor))

        return Mode(
            f"{self.name}, rounds x{factor:g}" if factor != 1 else self.name,
            more(self.jose_rounds),
            self.jose_calls,
            more(self.request_rounds),
            self.request_calls,
            more(self.metadata_rounds),
            self.metadata_calls,
            more(self.scaling_rounds),
            self.scaling_calls,
            self.warm_all_clients,
            self.many_clients,
        )


FULL = Mode("full", 45, 40, 41, 10, 45, 40, 20, 8, warm_all_clients=True)
QUICK = Mode("quick", 15, 20, 11, 5, 15, 20, 6, 5, warm_all_clients=False)

#: Target of figure 2.1-2.3: what the JARM path itself may add to one response.
OVERHEAD_TARGET = 100e-6
#: Target of figure 4: cost per response with more keys or clients, over 1 key and 1 client.
FLAT_TARGET = 1.10


def figure_1_tokens(world: World, mode: Mode) -> list[Figure]:
    """1.1-1.3 (information): what ``tokens`` spends around the cryptography of one response.

    ``tokens.response_claims`` + ``sign`` (+ ``encrypt``), keys obtained once, minus the bare
    cryptography of the same response (``world.bare_crypto``), per round: the share of figure
    2's overhead that building the JWT itself takes (JSON, base64, jwcrypto's algorithm objects).
    """
    variants: dict[str, Variant] = {}
    for case in CASE_LABELS:
        variants[f"tokens {case}"] = Variant(response_token(world, case))
        variants[f"bare {case}"] = Variant(bare_crypto(world, case))
    samples = measure(variants, mode.jose_rounds, mode.jose_calls)
    figures = []
    for number, (case, label) in enumerate(CASE_LABELS.items(), 1):
        built, bare = samples[f"tokens {case}"], samples[f"bare {case}"]
        figures.append(
            Figure(
                f"1.{number}",
                f"{label}: tokens - bare cryptography",
                median(per_round(lambda a, b: a - b, built, bare)),
                unit="µs",
                details=[f"tokens {us(median(built))}   bare cryptography {us(median(bare))}"],
            )
        )
    return figures


def figure_2_authorization(world: World, mode: Mode) -> list[Figure]:
    """2.1-2.3 (target ≤ 100 µs): the JARM path's own overhead per response.

    ``GET /o/authorize/`` (code + PKCE, logged in, ``skip_authorization``) with
    ``response_mode=query.jwt``, minus the same request in ``response_mode=query`` for the
    case's twin client, whose plain response runs the bare cryptography of the case's response
    (signature, plus encryption where configured) where the JWT path builds the JWT
    (``world.BenchmarkPlanner``): the median of the differences of the two requests made back
    to back (``measure_pairs``). What is left is what django_jarm's JWT path costs beyond the
    cryptography any implementation pays, at the point any implementation pays it: in the
    middle of a request, a signature costs several times what it costs in a tight loop
    (figure 1), and the code after it runs slower too.

    2.4 (target ≤ 1.00): the JARM view in plain mode / DOT's own view, same request.

    2.5-2.7 (information): the same overhead with the bare cryptography timed on its own, right
    after a plain request (the request, then the cryptography, untimed and timed), per round:
    what the cryptography does to the code after it is then charged to django_jarm.
    """
    browser = world.browser
    jwt_urls = {case: authorize_url("/o/authorize/", world.apps[case], "query.jwt") for case in CASE_LABELS}
    twin_urls = {case: authorize_url("/o/authorize/", world.twins[case], "query") for case in CASE_LABELS}
    urls = {
        "plain DOT": authorize_url("/dot/authorize/", world.apps["ES256"], "query"),
        "plain JARM view": authorize_url("/o/authorize/", world.apps["ES256"], "query"),
        **jwt_urls,
    }
    BenchmarkPlanner.in_request = {world.twins[case].client_id: bare_crypto(world, case) for case in CASE_LABELS}
    for name, url in urls.items():
        check_authorization(browser, url, jwt=name in CASE_LABELS)
    for url in twin_urls.values():
        check_authorization(browser, url, jwt=False)
    variants = {name: Variant(get(browser, url)) for name, url in urls.items()}
    plain_request = get(browser, urls["plain JARM view"])
    for case in CASE_LABELS:
        variants[f"bare {case}"] = Variant(bare_crypto(world, case), before=plain_request)
    pairs = {
        case: (Variant(get(browser, jwt_urls[case])), Variant(get(browser, twin_urls[case]))) for case in CASE_LABELS
    }

    def clear_grants() -> None:
        # Each request stores a grant: keep the table small (every variant sees the same table).
        Grant.objects.all().delete()

    try:
        paired = measure_pairs(pairs, mode.request_rounds, mode.request_calls, before_round=clear_grants)
    finally:
        BenchmarkPlanner.in_request = {}
    samples = measure(variants, mode.request_rounds, mode.request_calls, before_round=clear_grants)
    dot, plain = samples["plain DOT"], samples["plain JARM view"]
    figures = []
    for number, (case, label) in enumerate(CASE_LABELS.items(), 1):
        jarm = samples[case]
        figures.append(
            Figure(
                f"2.{number}",
                f"{label}: query.jwt - (query + bare cryptography in the request)",
                median(paired[case]),
                "<=",
                OVERHEAD_TARGET,
                unit="µs",
                details=[
                    f"{len(paired[case])} pairs of requests, back to back; middle half of the differences "
                    f"{us(quartile(paired[case], 1))} to {us(quartile(paired[case], 3))}",
                    f"query {us(median(plain))}   query.jwt {us(median(jarm))}   "
                    f"added over query {us(median(per_round(lambda j, p: j - p, jarm, plain)))}",
                    f"over DOT's own query response: added {us(median(per_round(lambda j, d: j - d, jarm, dot)))}; "
                    f"throughput DOT ÷ JARM = {paired_ratio(jarm, dot):.2f} "
                    f"({1 / median(dot):.0f} vs {1 / median(jarm):.0f} req/s)",
                ],
            )
        )
    figures.append(
        Figure(
            "2.4",
            "response_mode=query: JARM view / DOT's view",
            paired_ratio(plain, dot),
            "<=",
            1.00,
            details=[
                f"DOT {us(median(dot))}   JARM view {us(median(plain))}   "
                f"added {us(median(per_round(lambda p, d: p - d, plain, dot)))}"
            ],
        )
    )
    for number, (case, label) in enumerate(CASE_LABELS.items(), 5):
        jarm, bare = samples[case], samples[f"bare {case}"]
        figures.append(
            Figure(
                f"2.{number}",
                f"{label}: (query.jwt - query) - bare cryptography after a request",
                median(per_round(lambda j, p, b: j - p - b, jarm, plain, bare)),
                unit="µs",
                details=[f"bare cryptography right after a plain request {us(median(bare))}"],
            )
        )
    return figures


def figure_3_metadata(world: World, mode: Mode) -> list[Figure]:
    """3.1, 3.2 (target ≥ 1.00): JWKS and discovery throughput, ours / DOT's own views.

    Ours serve more (the JARM keys, the JARM metadata), from a per-process cache.
    """
    anonymous = Client()
    urls = {
        "JWKS ours": "/o/.well-known/jwks.json",
        "JWKS DOT": "/dot/.well-known/jwks.json",
        "discovery ours": "/o/.well-known/openid-configuration",
        "discovery DOT": "/dot/.well-known/openid-configuration",
    }
    sizes = {}
    for name, url in urls.items():
        response = anonymous.get(url)
        assert response.status_code == 200, (url, response.status_code)
        document = response.json()
        sizes[name] = f"{len(document['keys'])} keys" if "keys" in document else f"{len(document)} members"
    samples = measure(
        {name: Variant(get(anonymous, url)) for name, url in urls.items()}, mode.metadata_rounds, mode.metadata_calls
    )
    figures = []
    for number, what in enumerate(("JWKS", "discovery"), 1):
        ours, dot = samples[f"{what} ours"], samples[f"{what} DOT"]
        served = f"DOT {us(median(dot))} ({sizes[what + ' DOT']})   ours {us(median(ours))} ({sizes[what + ' ours']})"
        figures.append(
            Figure(
                f"3.{number}",
                f"{what}: our throughput / DOT's",
                paired_ratio(dot, ours),
                ">=",
                1.00,
                details=[served],
            )
        )
    return figures


def figure_4_scaling(world: World, mode: Mode) -> list[Figure]:
    """4.1-4.3 (target ≤ 1.10): cost per response of the encrypted client with 10 and 100
    server keys published, and with 1,000 clients (requests cycling through all of them),
    over 1 key and 1 client.

    Changing the configuration costs a database update and a warm-up, so the variants
    alternate by blocks of calls, round after round (``measure_configurations``).
    """
    # 99 more ES256 keys, "next" (published when a configuration says so, never signing).
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
            use_snapshot_of("main")
            forget_cached_configuration()  # the update() above does not move the state version

        return enter

    def enter_many() -> None:
        connections["default"] = many.connection
        Grant.objects.all().delete()
        # Its own snapshot, kept warm between blocks as a deployment's is (the clients do not change).
        use_snapshot_of("many")

    if mode.warm_all_clients:
        enter_many()
        for _ in many.urls:
            many.next_request()
    one_client = get(world.browser, url)
    variants = {
        "1 key, 1 client": Variant(one_client, published(1)),
        "10 keys": Variant(one_client, published(10)),
        "100 keys": Variant(one_client, published(100)),
        f"{mode.many_clients} clients": Variant(many.next_request, enter_many),
    }
    try:
        samples = measure_configurations(variants, mode.scaling_rounds, mode.scaling_calls)
        published(100)()
        jwks_size = len(Client().get("/o/.well-known/jwks.json").json()["keys"])
    finally:
        connections["default"] = main
        use_snapshot_of("main")
        ServerKey.objects.filter(kid__in=extra).update(status=ServerKey.Status.RETIRED)
        ServerKey.objects.filter(kid=ps256).update(status=ServerKey.Status.ACTIVE)
        forget_cached_configuration()
    base = samples["1 key, 1 client"]
    figures = [
        Figure(
            f"4.{number}",
            f"cost per response, {name} / 1 key, 1 client",
            paired_ratio(samples[name], base),
            "<=",
            FLAT_TARGET,
            details=[f"1 key, 1 client {us(median(base))}   {name} {us(median(samples[name]))}"],
        )
        for number, name in enumerate(list(variants)[1:], 1)
    ]
    figures[1].details.append(f"the JWKS holds {jwks_size} keys with 100 server keys published")
    return figures


#: (title, figure function), in the order they run and print.
SECTIONS: list[tuple[str, Callable[[World, Mode], list[Figure]]]] = [
    ("[1] tokens vs the bare cryptography of the same response (information)", figure_1_tokens),
    ("[2] GET /o/authorize/ (code + PKCE, logged in, skip_authorization): query.jwt vs query", figure_2_authorization),
    ("[3] JWKS and discovery vs DOT's own views", figure_3_metadata),
    ("[4] Scaling: the encrypted client with 1, 10, 100 server keys published, and 1,000 clients", figure_4_scaling),
]
