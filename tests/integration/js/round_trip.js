// kafkajs against a running broker: admin, an idempotent producer (plain and gzip batches), a consumer
// group, committed offsets. Prints one JSON object per step on stdout; the pytest test checks them.
// usage: node round_trip.js HOST:PORT TOPIC
const { Kafka, logLevel, CompressionTypes } = require('kafkajs')

const [broker, topic] = process.argv.slice(2)
const kafka = new Kafka({ clientId: 'hpbroker-test', brokers: [broker], logLevel: logLevel.ERROR })
const say = (step, data) => console.log(JSON.stringify({ step, ...data }))

async function main () {
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true })
  const meta = await admin.fetchTopicMetadata({ topics: [topic] })
  say('metadata', { partitions: meta.topics[0].partitions.map(p => p.partitionId).sort() })
  await admin.disconnect()

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const sent = []
  for (let b = 0; b < 4; b++) {
    const messages = []
    for (let i = 0; i < 250; i++) messages.push({ key: `k${i}`, value: `kafkajs-${b}-${i}` })
    const results = await producer.send({
      topic, acks: -1, messages, compression: b % 2 ? CompressionTypes.GZIP : CompressionTypes.None
    })
    sent.push(...results.map(r => ({ partition: r.partition, errorCode: r.errorCode, baseOffset: r.baseOffset })))
  }
  await producer.disconnect()
  say('produced', { results: sent })

  const consumer = kafka.consumer({ groupId: `${topic}-group`, sessionTimeout: 10000, heartbeatInterval: 500 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const values = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, 30000)
    consumer.run({
      eachMessage: async ({ message }) => {
        values.push(message.value.toString())
        if (values.length >= 1000) { clearTimeout(timer); resolve() }
      }
    }).catch(reject)
  })
  await consumer.disconnect() // commits what was consumed
  say('consumed', { values })

  const admin2 = kafka.admin()
  await admin2.connect()
  const offsets = await admin2.fetchOffsets({ groupId: `${topic}-group`, topics: [topic] })
  const ends = await admin2.fetchTopicOffsets(topic)
  await admin2.disconnect()
  say('offsets', {
    committed: offsets[0].partitions.map(p => ({ partition: p.partition, offset: Number(p.offset) })),
    ends: ends.map(p => ({ partition: p.partition, high: Number(p.high), low: Number(p.low) }))
  })
}

main().then(() => process.exit(0)).catch(e => { console.error(e); process.exit(1) })
