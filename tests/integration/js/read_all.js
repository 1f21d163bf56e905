// kafkajs reading every partition of a topic from the beginning to its end, through a consumer group.
// Prints one JSON object: {"records": [[partition, offset, key, value], ...]}, keys and values in base64
// (null for a null key/value).
// usage: node read_all.js HOST:PORT TOPIC GROUP
const { Kafka, logLevel } = require('kafkajs')

const [broker, topic, groupId] = process.argv.slice(2)
const kafka = new Kafka({ clientId: 'hpbroker-test', brokers: [broker], logLevel: logLevel.ERROR })
const text = b => (b === null || b === undefined ? null : b.toString('base64'))

async function main () {
  const admin = kafka.admin()
  await admin.connect()
  const ends = await admin.fetchTopicOffsets(topic)
  await admin.disconnect()
  const remaining = new Set(ends.filter(p => Number(p.high) > 0).map(p => p.partition))
  const high = Object.fromEntries(ends.map(p => [p.partition, Number(p.high)]))
  const records = []
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  await new Promise((resolve, reject) => {
    if (remaining.size === 0) resolve()
    const timer = setTimeout(() => reject(new Error(`not at the end after 30 s: ${[...remaining]}`)), 30000)
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        records.push([partition, Number(message.offset), text(message.key), text(message.value)])
        if (Number(message.offset) >= high[partition] - 1) remaining.delete(partition)
        if (remaining.size === 0) { clearTimeout(timer); resolve() }
      }
    }).catch(reject)
  })
  await consumer.disconnect()
  return JSON.stringify({ records }) + '\n'
}

// exit only once the (large) output is written: process.exit cuts a pipe's pending writes
main().then(out => process.stdout.write(out, () => process.exit(0)))
  .catch(e => { console.error(e); process.exit(1) })
