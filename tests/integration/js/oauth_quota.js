// kafkajs logs in with OAUTHBEARER (the token from $TOKEN), produces COUNT records of 1 KiB one batch at a
// time and reads them back. Prints one JSON object: records read, and how long each half took.
// usage: TOKEN=... node oauth_quota.js HOST:PORT TOPIC COUNT
const { Kafka, logLevel } = require('kafkajs')

const [broker, topic, countText] = process.argv.slice(2)
const count = Number(countText)
const kafka = new Kafka({
  clientId: 'kafkajs-oauth',
  brokers: [broker],
  logLevel: logLevel.ERROR,
  sasl: { mechanism: 'oauthbearer', oauthBearerProvider: async () => ({ value: process.env.TOKEN }) }
})

async function main () {
  const producer = kafka.producer()
  await producer.connect()
  const value = 'j'.repeat(1018)
  let started = Date.now()
  for (let i = 0; i < count; i += 50) {
    const messages = []
    for (let j = i; j < Math.min(count, i + 50); j++) messages.push({ value: String(j).padStart(6, '0') + value })
    await producer.send({ topic, acks: 1, messages })
  }
  const produceMs = Date.now() - started
  await producer.disconnect()

  const consumer = kafka.consumer({ groupId: `${topic}-g`, sessionTimeout: 10000, heartbeatInterval: 500 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const seen = []
  started = Date.now()
  await new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, 60000)
    consumer.run({
      eachMessage: async ({ message }) => {
        seen.push(Number(message.value.toString().slice(0, 6)))
        if (seen.length >= count) { clearTimeout(timer); resolve() }
      }
    }).catch(reject)
  })
  const consumeMs = Date.now() - started
  await consumer.disconnect()
  console.log(JSON.stringify({ seen, produceMs, consumeMs }))
}

main().then(() => process.exit(0)).catch(e => { console.error(e); process.exit(1) })
