// KafkaJS against rill's Kafka port, driven by test_kafka_groups.py: produces 20 keyed records into each
// partition of TOPIC, runs a group of two consumers that read them, stops one, produces as many again, and
// waits until the other has read those too. Prints what each consumer read as one JSON line.
// Usage: node kafkajs_group.js BROKER TOPIC GROUP PARTITIONS
const { Kafka, logLevel } = require('kafkajs')

const [broker, topic, groupId, partitionsArg] = process.argv.slice(2)
const partitions = Number(partitionsArg)
const kafka = new Kafka({ clientId: 'rill-compat', brokers: [broker], logLevel: logLevel.NOTHING })
const DEADLINE_MS = 60_000

async function produce(from) {
  const producer = kafka.producer()
  await producer.connect()
  const messages = []
  for (let p = 0; p < partitions; p++) {
    for (let i = from; i < from + 20; i++) messages.push({ partition: p, key: `k${i}`, value: `${p}:${i}` })
  }
  await producer.send({ topic, acks: -1, messages })
  await producer.disconnect()
}

async function member(name, seen) {
  // A short fetch wait: KafkaJS heartbeats (and so learns of a rebalance) only between fetches.
  const consumer = kafka.consumer({ groupId, sessionTimeout: 6000, heartbeatInterval: 200, maxWaitTimeInMs: 200 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      seen.push({ member: name, partition, offset: Number(message.offset), value: message.value.toString() })
    },
  })
  return consumer
}

async function until(condition, what) {
  const deadline = Date.now() + DEADLINE_MS
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

async function main() {
  const seen = []
  const first = await member('first', seen)
  const second = await member('second', seen)
  await produce(0)
  await until(() => seen.length >= partitions * 20, 'the first records')
  await second.disconnect()
  await produce(20)
  await until(() => seen.length >= partitions * 40, 'the records after the leave')
  await first.disconnect()
  console.log(JSON.stringify(seen))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
