"""rill against kafka-python's record codec: batches built outside this project are stored and served byte for
byte, batches rill writes decode in kafka-python, and what Kafka's broker refuses (LogValidator) rill refuses
too, with INVALID_ARGUMENT and nothing appended. Run by kafka-python.sh beside this file."""

import itertools
import os
import struct
import subprocess
import time

import grpc
import pytest
from kafka.record import MemoryRecords
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.util import calc_crc32c

from rill.v1 import rill_pb2 as pb
from rill.v1 import rill_pb2_grpc as rpc

RILL = os.environ["RILL_BIN"]
# RecordBatch v2 field positions (docs/format.md).
CRC_AT, ATTRIBUTES_AT, MAX_TIMESTAMP_AT, RECORD_COUNT_AT = 17, 21, 35, 57
CODECS = {
    "none": DefaultRecordBatch.CODEC_NONE,
    "gzip": DefaultRecordBatch.CODEC_GZIP,
    "snappy": DefaultRecordBatch.CODEC_SNAPPY,
    "lz4": DefaultRecordBatch.CODEC_LZ4,
    "zstd": DefaultRecordBatch.CODEC_ZSTD,
}
topic_names = (f"compat-{n}" for n in itertools.count())


@pytest.fixture(scope="module")
def broker(broker_addr):
    """The shared broker (conftest.py) and a gRPC channel to it."""
    channel = grpc.insecure_channel(broker_addr, options=[("grpc.max_receive_message_length", 64 << 20)])
    grpc.channel_ready_future(channel).result(timeout=30)
    yield broker_addr, channel
    channel.close()


def new_topic(channel):
    name = next(topic_names)
    rpc.TopicAdminStub(channel).CreateTopic(pb.CreateTopicRequest(name=name, partition_count=1), timeout=30)
    return name


def build(codec="none", records=3, value_bytes=1000, offsets=None, timestamp=1_700_000_000_000):
    """A batch built by kafka-python's own builder: keys, values that compress, a header each."""
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=CODECS[codec], is_transactional=False,
        producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20,
    )
    for i, offset in enumerate(offsets if offsets is not None else range(records)):
        value = (f"value {i} " * value_bytes)[:value_bytes].encode()
        builder.append(offset, timestamp + i, f"key-{i}".encode(), value, [("n", str(i).encode())])
    return bytes(builder.build())


def with_crc(batch):
    """Re-signs a batch after a field was changed, so only the change itself can be objected to."""
    batch = bytearray(batch)
    struct.pack_into(">I", batch, CRC_AT, calc_crc32c(memoryview(batch)[ATTRIBUTES_AT:]))
    return bytes(batch)


def patched(batch, at, fmt, value):
    batch = bytearray(batch)
    struct.pack_into(fmt, batch, at, value)
    return with_crc(batch)


def produce(channel, topic, batch):
    request = pb.ProduceRequest(topic=topic, partition=0, record_batch=batch, acks=pb.ACKS_LEADER)
    return rpc.RecordsStub(channel).Produce(request, timeout=30)


def fetch_raw(channel, topic, offset=0):
    request = pb.FetchRequest(topic=topic, partition=0, offset=offset, format=pb.RECORD_FORMAT_RAW)
    return rpc.RecordsStub(channel).Fetch(request, timeout=30)


def batches(raw):
    records = MemoryRecords(raw)
    found = []
    while (batch := records.next_batch()) is not None:
        found.append(batch)
    return found


def high_watermark(channel, topic):
    return fetch_raw(channel, topic).high_watermark


@pytest.mark.parametrize("codec", list(CODECS))
def test_a_kafka_python_batch_is_stored_and_served_byte_for_byte(broker, codec):
    _, channel = broker
    topic = new_topic(channel)
    sent = build(codec)
    assert DefaultRecordBatch(sent).compression_type == CODECS[codec], "kafka-python compressed it"
    produce(channel, topic, build("none", records=2))
    stored = produce(channel, topic, sent)
    assert (stored.base_offset, stored.last_offset) == (2, 4)
    raw = fetch_raw(channel, topic, offset=2).record_batches
    served = batches(raw)[-1]
    assert served.base_offset == 2 and served.validate_crc()
    # Only the fields the broker owns differ: base offset (0..8) and partition leader epoch (12..16).
    got = bytes(raw[-len(sent):])
    assert got[8:12] == sent[8:12] and got[16:] == sent[16:], "the batch was re-encoded"
    values = [(r.offset, r.key, r.value, r.headers) for r in served]
    assert values == [(2 + i, f"key-{i}".encode(), (f"value {i} " * 1000)[:1000].encode(), [("n", str(i).encode())])
                      for i in range(3)]


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_what_rill_produce_writes_decodes_in_kafka_python(broker, codec):
    addr, channel = broker
    topic = new_topic(channel)
    lines = "".join(f"line {i} {'x' * 200}\n" for i in range(500))
    subprocess.run([RILL, "produce", topic, "--compression", codec, "--broker", addr],
                   input=lines, text=True, check=True, timeout=60)
    offset, values = 0, []
    while offset < 500:
        for batch in batches(fetch_raw(channel, topic, offset).record_batches):
            assert batch.validate_crc()
            assert batch.compression_type == CODECS[codec]
            values.extend(r.value.decode() for r in batch if r.offset >= offset)
            offset = batch.next_offset
    assert values == lines.splitlines()


def test_a_compressed_batch_comes_back_as_structured_records(broker):
    _, channel = broker
    topic = new_topic(channel)
    produce(channel, topic, build("zstd"))
    request = pb.FetchRequest(topic=topic, partition=0, offset=1, format=pb.RECORD_FORMAT_STRUCTURED)
    response = rpc.RecordsStub(channel).Fetch(request, timeout=30)
    assert [(r.offset, r.key) for r in response.records] == [(1, b"key-1"), (2, b"key-2")]


def test_a_log_append_time_batch_is_stamped_with_the_brokers_clock(broker):
    _, channel = broker
    topic = new_topic(channel)
    sent = patched(build("none"), ATTRIBUTES_AT, ">h", 0x08)
    before = int(time.time() * 1000)
    produce(channel, topic, sent)
    after = int(time.time() * 1000)
    (served,) = batches(fetch_raw(channel, topic).record_batches)
    assert served.validate_crc(), "the stamped batch must carry a valid CRC"
    assert served.timestamp_type == 1
    assert before - 5 <= served.max_timestamp <= after + 5, (before, served.max_timestamp, after)
    assert {r.timestamp for r in served} == {served.max_timestamp}


def empty_batch_claiming(count):
    """The 61-byte batch an outside check sent: a header, a record count, no records."""
    header = bytearray(build("none", records=1))[:61]
    struct.pack_into(">i", header, 8, 61 - 12)  # batch length
    struct.pack_into(">i", header, 23, count - 1)  # last offset delta
    struct.pack_into(">i", header, RECORD_COUNT_AT, count)
    return with_crc(header)


def uncompressed_under(codec):
    """Plain records with a codec flag: the payload cannot decompress."""
    batch = bytearray(build("none"))
    struct.pack_into(">h", batch, ATTRIBUTES_AT, CODECS[codec])
    return with_crc(batch)


def transactional_without_producer():
    builder = DefaultRecordBatchBuilder(2, 0, True, -1, -1, -1, 1 << 20)
    builder.append(0, 1_700_000_000_000, None, b"in a transaction", [])
    return bytes(builder.build())


REFUSED = {
    "a count of 2^31-1 and no records": lambda: empty_batch_claiming(2**31 - 1),
    "a zstd flag over plain records": lambda: uncompressed_under("zstd"),
    "a gzip flag over plain records": lambda: uncompressed_under("gzip"),
    "a count below the records held": lambda: patched(build("none"), RECORD_COUNT_AT, ">i", 2),
    "a count above the records held": lambda: patched(build("none"), RECORD_COUNT_AT, ">i", 4),
    "a compressed count below the records held": lambda: patched(build("lz4"), RECORD_COUNT_AT, ">i", 2),
    "offset deltas with a gap": lambda: build("none", offsets=[0, 2, 3]),
    "compressed offset deltas with a gap": lambda: build("zstd", offsets=[0, 2, 3]),
    "a control batch": lambda: patched(build("none"), ATTRIBUTES_AT, ">h", 0x20),
    "a transactional batch without a producer id": transactional_without_producer,
    "a max timestamp above every record's": lambda: patched(build("none"), MAX_TIMESTAMP_AT, ">q", 1_800_000_000_000),
    "a max timestamp below the records'": lambda: patched(build("lz4"), MAX_TIMESTAMP_AT, ">q", 1_600_000_000_000),
}


@pytest.mark.parametrize("what", list(REFUSED))
def test_what_kafkas_broker_refuses_is_refused_and_nothing_is_appended(broker, what):
    _, channel = broker
    topic = new_topic(channel)
    produce(channel, topic, build("none", records=1))
    with pytest.raises(grpc.RpcError) as refused:
        produce(channel, topic, REFUSED[what]())
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
    assert refused.value.details(), "the refusal says why"
    assert high_watermark(channel, topic) == 1, "a refused batch must leave the log as it was"
    (good,) = batches(fetch_raw(channel, topic).record_batches)
    assert [r.value for r in good] == [(("value 0 " * 1000)[:1000]).encode()]


def test_a_request_that_is_not_protobuf_is_invalid_argument(broker):
    _, channel = broker
    produce_raw = channel.unary_unary("/rill.v1.Records/Produce", request_serializer=None,
                                      response_deserializer=None)
    with pytest.raises(grpc.RpcError) as refused:
        produce_raw(b"\xff\xff\xff\xff not protobuf", timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
