// kafkajs with SASL/SCRAM against a broker whose authorizer is on: the admin creates, describes and deletes
// ACLs; a granted user produces, another is refused. Prints one JSON object per step on stdout.
// usage: node acls.js HOST:PORT TOPIC ADMIN:PASSWORD GRANTED:PASSWORD REFUSED:PASSWORD
const { Kafka, logLevel, AclResourceTypes, AclOperationTypes, AclPermissionTypes, ResourcePatternTypes } =
  require('kafkajs')

const [broker, topic, ...logins] = process.argv.slice(2)
const [admin, granted, refused] = logins.map(l => { const i = l.indexOf(':'); return [l.slice(0, i), l.slice(i + 1)] })
const client = ([username, password]) => new Kafka({
  clientId: 'hpbroker-acl-test', brokers: [broker], logLevel: logLevel.NOTHING, retry: { retries: 2 },
  sasl: { mechanism: 'scram-sha-256', username, password }
})
const say = (step, data) => console.log(JSON.stringify({ step, ...data }))
const acl = {
  resourceType: AclResourceTypes.TOPIC, resourceName: topic, resourcePatternType: ResourcePatternTypes.LITERAL,
  principal: `User:${granted[0]}`, host: '*', operation: AclOperationTypes.WRITE,
  permissionType: AclPermissionTypes.ALLOW
}

async function produce (login) {
  const producer = client(login).producer()
  await producer.connect()
  try {
    const r = await producer.send({ topic, messages: [{ value: 'x' }] })
    return { ok: true, errorCode: r[0].errorCode }
  } catch (e) {
    const cause = e.cause || e.originalError || {}
    return { ok: false, type: e.type || cause.type || e.name, message: e.message }
  } finally {
    await producer.disconnect()
  }
}

async function main () {
  const a = client(admin).admin()
  await a.connect()
  await a.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true })
  await a.createAcls({ acl: [acl] })
  let described = []
  for (let i = 0; i < 50 && described.length === 0; i++) {
    const r = await a.describeAcls({
      resourceType: AclResourceTypes.TOPIC, resourceName: topic, resourcePatternType: ResourcePatternTypes.LITERAL,
      operation: AclOperationTypes.ANY, permissionType: AclPermissionTypes.ANY
    })
    described = r.resources.flatMap(res => res.acls.map(x => ({ name: res.resourceName, ...x })))
    if (described.length === 0) await new Promise(resolve => setTimeout(resolve, 100))
  }
  say('described', { acls: described })
  say('granted', await produce(granted))
  say('refused', await produce(refused))
  const deleted = await a.deleteAcls({ filters: [{ ...acl, operation: AclOperationTypes.ANY }] })
  say('deleted', { count: deleted.filterResponses[0].matchingAcls.length })
  await a.disconnect()
}

main().then(() => process.exit(0)).catch(e => { console.error(e); process.exit(1) })
