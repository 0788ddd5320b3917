// KafkaJS's transactional producer and its consumers against rill's Kafka port, driven by
// test_kafka_transactions.py: commits a transaction that also commits GROUP's offset of TOPIC (sendOffsets),
// aborts one, commits another, then reads TOPIC from the beginning with a read_committed consumer (KafkaJS's
// default) and a read_uncommitted one, and fetches GROUP's committed offsets. KafkaJS implements the protocol
// itself (no librdkafka), with its own versions of each transactional API. Prints one JSON line:
// {"committed": [...], "uncommitted": [...], "offsets": [...]}.
// Usage: node kafkajs_transactions.js BROKER TOPIC GROUP
const { Kafka, logLevel } = require('kafkajs')

const [broker, topic, groupId] = process.argv.slice(2)
const kafka = new Kafka({ clientId: 'rill-compat-tx', brokers: [broker], logLevel: logLevel.NOTHING })
const DEADLINE_MS = 60_000
// How long a consumer that has all it should get keeps reading, to catch a record it should not get.
const QUIET_MS = 1_000

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function readAll(readUncommitted, expected) {
  const consumer = kafka.consumer({
    groupId: `${groupId}-reader-${readUncommitted ? 'uncommitted' : 'committed'}`,
    readUncommitted,
    maxWaitTimeInMs: 200,
  })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const seen = []
  await consumer.run({ eachMessage: async ({ message }) => { seen.push(message.value.toString()) } })
  const deadline = Date.now() + DEADLINE_MS
  while (seen.length < expected) {
    if (Date.now() > deadline) throw new Error(`timed out with ${JSON.stringify(seen)}`)
    await sleep(50)
  }
  await sleep(QUIET_MS)
  await consumer.disconnect()
  return seen
}

async function main() {
  const producer = kafka.producer({ transactionalId: 'kafkajs-tx', idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const first = await producer.transaction()
  await first.send({ topic, messages: [{ value: 'c0' }, { value: 'c1' }] })
  await first.sendOffsets({ consumerGroupId: groupId, topics: [{ topic, partitions: [{ partition: 0, offset: '5' }] }] })
  await first.commit()
  const aborted = await producer.transaction()
  await aborted.send({ topic, messages: [{ value: 'a0' }] })
  await aborted.sendOffsets({ consumerGroupId: groupId, topics: [{ topic, partitions: [{ partition: 0, offset: '9' }] }] })
  await aborted.abort()
  const last = await producer.transaction()
  await last.send({ topic, messages: [{ value: 'c2' }] })
  await last.commit()
  await producer.disconnect()
  const committed = await readAll(false, 3)
  const uncommitted = await readAll(true, 4)
  const admin = kafka.admin()
  await admin.connect()
  const offsets = await admin.fetchOffsets({ groupId, topics: [topic] })
  await admin.disconnect()
  console.log(JSON.stringify({ committed, uncommitted, offsets }))
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err)
    process.exit(1)
  },
)
