"""Kafka clients authenticating with SASL over TLS (security protocol SASL_SSL): kafka-python, librdkafka
(confluent-kafka) and Debian's kcat (an older librdkafka, which needs SaslHandshake v0 advertised) with
SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN against a `rill broker` started with
--kafka-sasl-mechanisms, its users made with `rill user create` and its certificates by trustme in the test. A
wrong password is refused with SASL_AUTHENTICATION_FAILED and words that name no secret; a request before
authentication closes the connection. confluent-kafka's AdminClient makes, describes and deletes a user's SCRAM
credentials (AlterUserScramCredentials, DescribeUserScramCredentials), and librdkafka logs in with them, then
not. Run by kafka-clients.sh."""

import itertools
import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile

import pytest
import trustme
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialDeletion,
                                   UserScramCredentialUpsertion)
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from conftest import read_values, running_broker

RILL = os.environ["RILL_BIN"]
topic_names = (f"kafka-sasl-{n}" for n in itertools.count())
MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]
PASSWORD = "correct horse battery staple"
KCAT = shutil.which("kcat")
SASL_AUTHENTICATION_FAILED = 58


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA and the broker's certificate (localhost, 127.0.0.1), as PEM files."""
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    files = {name: str(directory / name) for name in ["ca.pem", "server.pem", "server.key"]}
    ca.cert_pem.write_to_path(files["ca.pem"])
    server.cert_chain_pems[0].write_to_path(files["server.pem"])
    server.private_key_pem.write_to_path(files["server.key"])
    return files


def rill(pki, addr, *args, stdin=None):
    done = subprocess.run([RILL, *args, "--broker", f"https://{addr}", "--tls-ca", pki["ca.pem"]],
                          input=stdin, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def sasl_broker(pki):
    """A TLS `rill broker` offering every SASL mechanism, with user `app` (password PASSWORD); its address."""
    with tempfile.TemporaryDirectory() as data_dir:
        flags = ["--admin-listen", "off", "--tls-cert", pki["server.pem"], "--tls-key", pki["server.key"],
                 "--kafka-sasl-mechanisms", ",".join(MECHANISMS)]
        with running_broker(data_dir, *flags) as addr:
            rill(pki, addr, "user", "create", "app", "--password-stdin", stdin=PASSWORD + "\n")
            yield addr


def new_topic(pki, addr):
    name = next(topic_names)
    rill(pki, addr, "topic", "create", name)
    return name


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_librdkafka_produces_and_consumes_with_sasl_ssl(pki, sasl_broker, mechanism):
    topic = new_topic(pki, sasl_broker)
    settings = {"bootstrap.servers": sasl_broker, "security.protocol": "SASL_SSL", "ssl.ca.location": pki["ca.pem"],
                "sasl.mechanism": mechanism, "sasl.username": "app", "sasl.password": PASSWORD}
    producer = Producer({**settings, "acks": "all"})
    delivered = []
    for i in range(10):
        producer.produce(topic, value=f"{mechanism} {i}".encode(), partition=0,
                         on_delivery=lambda err, msg: delivered.append((err, msg.offset())))
    assert producer.flush(30) == 0
    assert delivered == [(None, i) for i in range(10)]
    consumer = Consumer({**settings, "group.id": f"{topic}-reader", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    values = read_values(consumer, topic, 10)
    assert values == [f"{mechanism} {i}".encode() for i in range(10)]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kafka_python_produces_and_consumes_with_sasl_ssl(pki, sasl_broker, mechanism):
    topic = new_topic(pki, sasl_broker)
    settings = {"bootstrap_servers": sasl_broker, "security_protocol": "SASL_SSL", "ssl_cafile": pki["ca.pem"],
                "sasl_mechanism": mechanism, "sasl_plain_username": "app", "sasl_plain_password": PASSWORD}
    producer = KafkaProducer(acks="all", enable_idempotence=False, **settings)
    try:
        futures = [producer.send(topic, value=f"py {i}".encode(), partition=0) for i in range(10)]
        producer.flush(timeout=30)
        assert [f.get(timeout=30).offset for f in futures] == list(range(10))
    finally:
        producer.close(timeout=10)
    consumer = KafkaConsumer(enable_auto_commit=False, consumer_timeout_ms=10_000, **settings)
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek(partition, 0)
        values = [record.value for _, record in zip(range(10), consumer)]
    finally:
        consumer.close()
    assert values == [f"py {i}".encode() for i in range(10)]


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed (see kafka-clients.sh)")
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kcat_produces_and_consumes_with_sasl_ssl(pki, sasl_broker, mechanism):
    topic = new_topic(pki, sasl_broker)
    settings = ["-b", sasl_broker, "-X", "security.protocol=SASL_SSL", "-X", f"ssl.ca.location={pki['ca.pem']}",
                "-X", f"sasl.mechanism={mechanism}", "-X", "sasl.username=app", "-X", f"sasl.password={PASSWORD}"]
    lines = [f"kcat {mechanism} {i}" for i in range(10)]
    produced = subprocess.run([KCAT, *settings, "-t", topic, "-p", "0", "-P"], input="\n".join(lines) + "\n",
                              capture_output=True, text=True, timeout=60)
    assert produced.returncode == 0 and "ERROR" not in produced.stderr, produced.stderr
    consumed = subprocess.run([KCAT, *settings, "-t", topic, "-p", "0", "-C", "-o", "beginning", "-e", "-q"],
                              capture_output=True, text=True, timeout=60)
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.splitlines() == lines


def test_librdkafka_with_a_wrong_password_gets_an_authentication_error(pki, sasl_broker):
    errors = []
    producer = Producer({"bootstrap.servers": sasl_broker, "security.protocol": "SASL_SSL",
                         "ssl.ca.location": pki["ca.pem"], "sasl.mechanism": "SCRAM-SHA-256",
                         "sasl.username": "app", "sasl.password": "wrong", "error_cb": errors.append})
    for _ in range(100):
        producer.poll(0.1)
        if errors:
            break
    assert errors, "no error reported"
    assert errors[0].code() == KafkaError._AUTHENTICATION, errors[0]
    assert "invalid user name or password" in errors[0].str(), errors[0]
    assert "wrong" not in errors[0].str().replace("wrong password", "")


def tls_connection(pki, addr):
    host, port = addr.rsplit(":", 1)
    context = ssl.create_default_context(cafile=pki["ca.pem"])
    return context.wrap_socket(socket.create_connection((host, int(port)), timeout=10), server_hostname=host)


def request(conn, api_key, version, correlation_id, body):
    header = struct.pack(">hhih", api_key, version, correlation_id, 4) + b"test"
    conn.sendall(struct.pack(">i", len(header) + len(body)) + header + body)


def read_exactly(conn, n):
    """`n` bytes from `conn`, or None when the broker closed first."""
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def raw_frame(conn):
    """One frame's bytes after its size prefix, or None when the broker closed: a raw SASL frame (after a
    SaslHandshake v0) whole, or a response with its header."""
    size = read_exactly(conn, 4)
    if size is None:
        return None
    return read_exactly(conn, struct.unpack(">i", size)[0])


def response(conn):
    """One response frame's body after its correlation id (header v0), or None when the broker closed."""
    frame = raw_frame(conn)
    return None if frame is None else frame[4:]


def kafka_string(text):
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def test_a_request_before_authentication_closes_the_connection_and_api_versions_advertises_sasl(pki, sasl_broker):
    with tls_connection(pki, sasl_broker) as conn:
        request(conn, 18, 0, 1, b"")  # ApiVersions v0: served before authentication
        body = response(conn)
        error_code, count = struct.unpack(">hi", body[:6])
        keys = {struct.unpack(">hhh", body[6 + 6 * i:12 + 6 * i])[0] for i in range(count)}
        assert error_code == 0 and {17, 36} <= keys
        request(conn, 3, 1, 2, struct.pack(">i", -1))  # Metadata v1, all topics: not before authentication
        assert response(conn) is None


def test_a_wrong_plain_password_is_answered_sasl_authentication_failed_naming_no_secret(pki, sasl_broker):
    with tls_connection(pki, sasl_broker) as conn:
        request(conn, 17, 1, 1, kafka_string("PLAIN"))  # SaslHandshake v1
        body = response(conn)
        assert struct.unpack(">h", body[:2])[0] == 0
        token = b"\0app\0not-the-password"
        request(conn, 36, 0, 2, struct.pack(">i", len(token)) + token)  # SaslAuthenticate v0
        body = response(conn)
        error_code, message_len = struct.unpack(">hh", body[:4])
        message = body[4:4 + message_len].decode()
        assert error_code == SASL_AUTHENTICATION_FAILED
        assert message == "authentication failed: invalid user name or password"
        assert response(conn) is None, "the connection is closed after a failure"
    # An unknown user gets the very same answer: it does not tell whether the user exists.
    with tls_connection(pki, sasl_broker) as conn:
        request(conn, 17, 1, 1, kafka_string("PLAIN"))
        response(conn)
        token = b"\0nobody\0not-the-password"
        request(conn, 36, 0, 2, struct.pack(">i", len(token)) + token)
        body = response(conn)
        assert struct.unpack(">h", body[:2])[0] == SASL_AUTHENTICATION_FAILED
        assert body[4:].startswith(b"authentication failed: invalid user name or password")


def test_a_handshake_v0_takes_raw_sasl_frames_then_serves_requests(pki, sasl_broker):
    with tls_connection(pki, sasl_broker) as conn:
        request(conn, 17, 0, 1, kafka_string("PLAIN"))  # SaslHandshake v0: raw frames follow
        body = response(conn)
        assert struct.unpack(">h", body[:2])[0] == 0
        token = ("\0app\0" + PASSWORD).encode()
        conn.sendall(struct.pack(">i", len(token)) + token)  # no Kafka header
        assert raw_frame(conn) == b"", "PLAIN's answer is an empty raw frame"
        request(conn, 3, 1, 2, struct.pack(">i", -1))  # Metadata v1, all topics: authenticated now
        body = response(conn)
        assert body is not None and len(body) > 4
    # A raw frame may be shorter than any Kafka request: PLAIN for user "u", password "p" is 4 bytes.
    rill(pki, sasl_broker, "user", "create", "u", "--password-stdin", stdin="p\n")
    with tls_connection(pki, sasl_broker) as conn:
        request(conn, 17, 0, 1, kafka_string("PLAIN"))
        response(conn)
        conn.sendall(struct.pack(">i", 4) + b"\0u\0p")
        assert raw_frame(conn) == b"", "authenticated"
        request(conn, 3, 1, 2, struct.pack(">i", -1))
        assert response(conn) is not None
    # A wrong password after a v0 handshake has no room for an error: the connection is closed.
    with tls_connection(pki, sasl_broker) as conn:
        request(conn, 17, 0, 1, kafka_string("PLAIN"))
        response(conn)
        token = b"\0app\0not-the-password"
        conn.sendall(struct.pack(">i", len(token)) + token)
        assert raw_frame(conn) is None


def test_an_unsupported_mechanism_is_refused_with_the_list_offered(pki, sasl_broker):
    with tls_connection(pki, sasl_broker) as conn:
        request(conn, 17, 1, 1, kafka_string("GSSAPI"))
        body = response(conn)
        error_code, count = struct.unpack(">hi", body[:6])
        offered, at = [], 6
        for _ in range(count):
            (length,) = struct.unpack(">h", body[at:at + 2])
            offered.append(body[at + 2:at + 2 + length].decode())
            at += 2 + length
        assert error_code == 33  # UNSUPPORTED_SASL_MECHANISM
        assert offered == MECHANISMS


def login_error(pki, addr, user, password, mechanism):
    """The first error librdkafka reports producing as `user`, or None once it has produced a record."""
    errors, delivered = [], []
    producer = Producer({"bootstrap.servers": addr, "security.protocol": "SASL_SSL", "ssl.ca.location": pki["ca.pem"],
                         "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password,
                         "error_cb": errors.append})
    topic = new_topic(pki, addr)
    producer.produce(topic, value=b"hello", partition=0, on_delivery=lambda err, msg: delivered.append(err))
    for _ in range(100):
        producer.poll(0.1)
        if errors or delivered:
            break
    return errors[0] if errors else delivered[0]


def test_scram_credentials_are_made_described_and_deleted_through_kafkas_admin_api(pki, sasl_broker):
    admin = AdminClient({"bootstrap.servers": sasl_broker, "security.protocol": "SASL_SSL",
                         "ssl.ca.location": pki["ca.pem"], "sasl.mechanism": "SCRAM-SHA-256",
                         "sasl.username": "app", "sasl.password": PASSWORD})
    upserts = [UserScramCredentialUpsertion("ops", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), b"s3cret"),
               UserScramCredentialUpsertion("ops", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"s3cret",
                                            b"some salt")]
    for future in admin.alter_user_scram_credentials(upserts).values():
        future.result(timeout=30)
    described = admin.describe_user_scram_credentials(["ops"])["ops"].result(timeout=30)
    infos = {info.mechanism: info.iterations for info in described.scram_credential_infos}
    assert infos == {ScramMechanism.SCRAM_SHA_256: 8192, ScramMechanism.SCRAM_SHA_512: 4096}, infos
    everyone = admin.describe_user_scram_credentials().result(timeout=30)
    assert {"app", "ops"} <= set(everyone), everyone
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]:
        assert login_error(pki, sasl_broker, "ops", "s3cret", mechanism) is None, mechanism
    assert "ops" in rill(pki, sasl_broker, "user", "list")

    # Kafka's refusals: too few iterations; deleting a credential the user does not have.
    weak = [UserScramCredentialUpsertion("weak", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 100), b"pw")]
    with pytest.raises(KafkaException) as refused:
        admin.alter_user_scram_credentials(weak)["weak"].result(timeout=30)
    assert refused.value.args[0].code() == KafkaError.UNACCEPTABLE_CREDENTIAL, refused.value
    assert "from 4096 to 16384" in refused.value.args[0].str()

    # Deleting its last credential removes the user: described no more, and its logins refused.
    deletions = [UserScramCredentialDeletion("ops", ScramMechanism.SCRAM_SHA_256),
                 UserScramCredentialDeletion("ops", ScramMechanism.SCRAM_SHA_512)]
    for future in admin.alter_user_scram_credentials(deletions).values():
        future.result(timeout=30)
    with pytest.raises(KafkaException) as gone:
        admin.describe_user_scram_credentials(["ops"])["ops"].result(timeout=30)
    assert gone.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND, gone.value
    error = login_error(pki, sasl_broker, "ops", "s3cret", "SCRAM-SHA-256")
    assert error is not None and error.code() == KafkaError._AUTHENTICATION, error
    with pytest.raises(KafkaException) as missing:
        admin.alter_user_scram_credentials(deletions[:1])["ops"].result(timeout=30)
    assert missing.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND, missing.value
