"""Kafka clients authenticating with SASL OAUTHBEARER against a `rill broker` started with --oauth-jwks, and
the same tokens on rill's gRPC and admin listener. The identity provider is a small OIDC provider in this test
(an HTTP server on a free port): it issues RS256 JWTs for client credentials at /token and publishes its public
keys at /certs, which the broker reads. librdkafka (confluent-kafka, `sasl.oauthbearer.method=oidc`) gets its
tokens from /token itself, as it would from Keycloak or Okta; kafka-python is handed them by a token provider.
Tokens the broker must refuse (expired, another audience, another issuer, signed by a key it does not know) are
refused with SASL_AUTHENTICATION_FAILED and words naming what failed; a rotation of the provider's keys is
followed; ACLs decide on the token's principal; `rill --token JWT` and `/metrics` take the same tokens. Run by
kafka-clients.sh."""

import base64
import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from confluent_kafka import Consumer, Producer
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from kafka import KafkaConsumer, KafkaProducer
from kafka.net.sasl.oauth import AbstractTokenProvider

from conftest import free_port, read_values, running_broker

RILL = os.environ["RILL_BIN"]
ISSUER = "https://idp.rill.test/realms/test"
AUDIENCE = "rill"
# Client credentials the provider knows: client id -> secret. The client id is the token's subject.
CLIENTS = {"orders-app": "s3cret-orders", "admin": "s3cret-admin", "reader": "s3cret-reader"}
SASL_AUTHENTICATION_FAILED = 58


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint_b64url(number):
    return b64url(number.to_bytes((number.bit_length() + 7) // 8, "big"))


class SigningKey:
    """An RSA key of the provider, its key id, and its public JWK."""

    def __init__(self, kid):
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.private.public_key().public_numbers()
        self.jwk = {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": uint_b64url(numbers.n),
                    "e": uint_b64url(numbers.e)}

    def sign(self, claims):
        header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": self.kid}).encode())
        payload = b64url(json.dumps(claims).encode())
        signature = self.private.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{header}.{payload}.{b64url(signature)}"


class Provider:
    """An OIDC provider: /token (client_credentials, HTTP basic or form credentials) and /certs (the JWKS)."""

    def __init__(self):
        self.keys = [SigningKey("key-1")]
        self.jwks_reads = []
        self.tokens_issued = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path != "/certs":
                    return self.answer(404, {"error": "not found"})
                provider.jwks_reads.append(time.monotonic())
                self.answer(200, {"keys": [key.jwk for key in provider.keys]})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                client, secret = form.get("client_id", [None])[0], form.get("client_secret", [None])[0]
                basic = self.headers.get("Authorization", "")
                if basic.startswith("Basic "):
                    client, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
                    client, secret = urllib.parse.unquote(client), urllib.parse.unquote(secret)
                if self.path != "/token" or form.get("grant_type") != ["client_credentials"]:
                    return self.answer(400, {"error": "unsupported_grant_type"})
                if CLIENTS.get(client) != secret:
                    return self.answer(401, {"error": "invalid_client"})
                token = provider.token(client)
                provider.tokens_issued.append(client)
                self.answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": 300})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def token(self, subject, lifetime=300, key=None, **overrides):
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "iat": now, "exp": now + lifetime,
                  "scope": "kafka"}
        claims.update(overrides)
        return (key or self.keys[-1]).sign(claims)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def provider():
    idp = Provider()
    yield idp
    idp.close()


def rill(addr, *args, token=None, check=True):
    prefix = ["--token", token] if token else []
    done = subprocess.run([RILL, *prefix, *args, "--broker", addr], capture_output=True, text=True, timeout=60)
    if check:
        assert done.returncode == 0, done.stderr
    return done



@pytest.fixture(scope="module")
def broker(provider):
    """A broker taking the provider's tokens on both ports, with ACLs on (`User:admin` a super user), and
    orders-app allowed everything on topics `orders*` and groups `orders*`; its address and admin port."""
    admin_port = free_port()
    flags = ["--admin-listen", f"127.0.0.1:{admin_port}", "--admin-auth", "required",
             "--kafka-sasl-mechanisms", "OAUTHBEARER", "--sasl-plain-without-tls",
             "--oauth-jwks", f"{provider.url}/certs", "--oauth-issuer", ISSUER, "--oauth-audience", AUDIENCE,
             "--authorization", "on", "--super-users", "User:admin"]
    with tempfile.TemporaryDirectory() as data_dir:
        with running_broker(data_dir, *flags) as addr:
            admin = provider.token("admin")
            for topic in ["orders", "orders-replay", "orders-rotated", "secrets"]:
                rill(addr, "topic", "create", topic, token=admin)
            for resource in [["--topic", "orders"], ["--group", "orders"]]:
                rill(addr, "acl", "add", "--allow", "--principal", "User:orders-app", "--operation", "all",
                     *resource, "--prefixed", token=admin)
            yield {"addr": addr, "admin_port": admin_port}


def oidc_settings(addr, provider, client):
    return {"bootstrap.servers": addr, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER",
            "sasl.oauthbearer.method": "oidc", "sasl.oauthbearer.client.id": client,
            "sasl.oauthbearer.client.secret": CLIENTS[client],
            "sasl.oauthbearer.token.endpoint.url": f"{provider.url}/token", "sasl.oauthbearer.scope": "kafka"}


def produce(settings, topic, values):
    producer = Producer({**settings, "acks": "all", "message.timeout.ms": 15000})
    results = []
    for value in values:
        producer.produce(topic, value=value, partition=0,
                         on_delivery=lambda err, msg: results.append(err.code() if err else None))
    producer.flush(30)
    return results


def test_librdkafka_gets_its_token_from_the_provider_and_produces_and_consumes(broker, provider):
    settings = oidc_settings(broker["addr"], provider, "orders-app")
    values = [f"order {i}".encode() for i in range(20)]
    assert produce(settings, "orders", values) == [None] * 20
    consumer = Consumer({**settings, "group.id": "orders-oidc", "auto.offset.reset": "earliest"})
    assert read_values(consumer, "orders", 20) == values
    assert "orders-app" in provider.tokens_issued
    assert provider.jwks_reads, "the broker read the provider's keys"
    described = rill(broker["addr"], "group", "describe", "orders-oidc", token=provider.token("admin")).stdout
    assert "orders" in described, described


class FixedToken(AbstractTokenProvider):
    def __init__(self, token):
        self._token = token

    def token(self):
        return self._token


def test_kafka_python_authenticates_with_a_token_it_is_handed(broker, provider):
    settings = {"bootstrap_servers": broker["addr"], "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "OAUTHBEARER", "sasl_oauth_token_provider": FixedToken(provider.token("orders-app"))}
    producer = KafkaProducer(acks="all", **settings)
    for i in range(5):
        producer.send("orders-replay", f"replay {i}".encode(), partition=0).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer("orders-replay", auto_offset_reset="earliest", consumer_timeout_ms=10000,
                             group_id="orders-kp", **settings)
    values = [record.value for record in consumer][:5]
    consumer.close()
    assert values == [f"replay {i}".encode() for i in range(5)]


def authentication_error(addr, token):
    """The error librdkafka reports for a producer whose token is `token` (handed over by `oauth_cb`)."""
    errors = []
    producer = Producer({"bootstrap.servers": addr, "security.protocol": "SASL_PLAINTEXT",
                         "sasl.mechanism": "OAUTHBEARER", "oauth_cb": lambda _: (token, time.time() + 300),
                         "error_cb": errors.append, "message.timeout.ms": 3000})
    producer.produce("orders", value=b"refused", partition=0)
    deadline = time.monotonic() + 20
    while not errors and time.monotonic() < deadline:
        producer.poll(0.2)
    producer.flush(5)
    assert errors, "no error reported"
    return errors[0]


@pytest.mark.parametrize("case, reason", [
    ("expired", "the token has expired"),
    ("audience", "the token's audience does not name this broker"),
    ("issuer", "the token's issuer is not the one the broker expects"),
    ("stranger", "which the identity provider's keys do not have"),
    ("subject", "claim is not a valid principal name"),
])
def test_a_token_the_broker_must_not_take_is_refused_saying_why(broker, provider, case, reason):
    token = {
        "expired": lambda: provider.token("orders-app", lifetime=-120),
        "audience": lambda: provider.token("orders-app", aud="another-service"),
        "issuer": lambda: provider.token("orders-app", iss="https://evil.test"),
        "stranger": lambda: provider.token("orders-app", key=SigningKey("not-the-providers")),
        "subject": lambda: provider.token("orders app|1"),
    }[case]()
    error = authentication_error(broker["addr"], token)
    assert "authentication failed: invalid token" in error.str() and reason in error.str(), error.str()


def test_a_rotation_of_the_providers_keys_is_followed(broker, provider):
    # The broker reads the keys again for a key id it lacks, at most every 10 s: wait out its last read.
    time.sleep(max(0.0, 10.5 - (time.monotonic() - provider.jwks_reads[-1])))
    reads = len(provider.jwks_reads)
    provider.keys.append(SigningKey("key-2"))
    settings = oidc_settings(broker["addr"], provider, "orders-app")
    assert produce(settings, "orders-rotated", [b"after rotation"]) == [None]
    assert len(provider.jwks_reads) > reads, "the broker read the new keys"
    consumer = Consumer({**settings, "group.id": "orders-rotated", "auto.offset.reset": "earliest"})
    assert read_values(consumer, "orders-rotated", 1) == [b"after rotation"]


def test_acls_decide_on_the_tokens_principal(broker, provider):
    reader = oidc_settings(broker["addr"], provider, "reader")
    assert produce(reader, "orders", [b"not allowed"]) == [29], "TOPIC_AUTHORIZATION_FAILED"
    app = oidc_settings(broker["addr"], provider, "orders-app")
    assert produce(app, "secrets", [b"not allowed either"]) == [29]


def test_rill_and_the_admin_listener_take_the_same_tokens(broker, provider):
    addr = broker["addr"]
    listed = rill(addr, "topic", "list", token=provider.token("admin")).stdout
    assert "orders" in listed and "secrets" in listed, listed
    denied = rill(addr, "topic", "create", "orders-by-app", token=provider.token("reader"), check=False)
    assert denied.returncode != 0 and "denied" in denied.stderr.lower(), denied.stderr
    expired = rill(addr, "topic", "list", token=provider.token("admin", lifetime=-120), check=False)
    assert expired.returncode != 0 and "the token has expired" in expired.stderr, expired.stderr
    metrics = f"http://127.0.0.1:{broker['admin_port']}/metrics"
    request = urllib.request.Request(metrics, headers={"Authorization": f"Bearer {provider.token('admin')}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200 and b"rill_" in answer.read()
    forged = urllib.request.Request(metrics, headers={"Authorization": f"Bearer {provider.token('admin', aud='x')}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(forged, timeout=10)
    assert refused.value.code == 401 and b"audience" in refused.value.read()


def metric_values(admin_port, name):
    """`name`'s samples on the broker's /metrics: labels text -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10) as answer:
        lines = answer.read().decode().splitlines()
    samples = {}
    for line in lines:
        if line.startswith(name + "{"):
            labels, _, value = line[len(name):].rpartition(" ")
            samples[labels] = float(value)
    return samples


def test_librdkafka_reauthenticates_before_its_session_ends(provider):
    """KIP-368: with --connections-max-reauth-ms, librdkafka re-authenticates on its connection (a new token from
    the provider when it needs one) and the broker closes none of them."""
    admin_port = free_port()
    flags = ["--admin-listen", f"127.0.0.1:{admin_port}", "--kafka-sasl-mechanisms", "OAUTHBEARER",
             "--sasl-plain-without-tls", "--oauth-jwks", f"{provider.url}/certs", "--oauth-audience", AUDIENCE,
             "--connections-max-reauth-ms", "3000"]
    with tempfile.TemporaryDirectory() as data_dir, running_broker(data_dir, *flags) as addr:
        rill(addr, "topic", "create", "orders-long")
        errors = []
        settings = {**oidc_settings(addr, provider, "orders-app"), "error_cb": errors.append}
        producer = Producer({**settings, "acks": "all", "message.timeout.ms": 15000})
        delivered = []
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < 10:
            producer.produce("orders-long", value=f"long {sent}".encode(), partition=0,
                             on_delivery=lambda err, msg: delivered.append(err))
            sent += 1
            producer.poll(0)
            time.sleep(0.1)
        producer.flush(30)
        assert delivered == [None] * sent and not errors, errors
        requests = metric_values(admin_port, "rill_kafka_requests_total")
        authentications = requests.get('{api="SaslAuthenticate"}', 0)
        assert authentications >= 3, f"one authentication and re-authentications every ~3 s: {requests}"
        closed = {k: v for k, v in metric_values(admin_port, "rill_kafka_request_errors_total").items()
                  if "CONNECTION_CLOSED" in k}
        assert not closed, f"no connection closed for an expired session: {closed}"
        consumer = Consumer({**settings, "group.id": "orders-long", "auto.offset.reset": "earliest"})
        assert len(read_values(consumer, "orders-long", sent)) == sent
