// Sends identify, group and track calls with the official Segment Node.js
// client, configured with our host, as a product would. The client sends
// them as /v1/batch requests. Exits non-zero if any delivery failed.
const { Analytics } = require('@segment/analytics-node')

const analytics = new Analytics({
  writeKey: process.env.WRITE_KEY,
  host: process.env.HOST,
  flushAt: 4,
  flushInterval: 100,
  maxRetries: 2,
})

let failures = 0
let requests = 0
analytics.on('error', (err) => {
  failures++
  console.error('delivery failed:', err && (err.reason || err.code || err.message || err))
})
analytics.on('http_request', (req) => {
  requests++
  const body = typeof req.body === 'string' ? JSON.parse(req.body) : req.body
  console.log('POST', req.url, 'calls:', body && body.batch ? body.batch.length : 0)
})

const day = 24 * 60 * 60 * 1000
const now = Date.now()
analytics.identify({ userId: 'ada', traits: { plan: 'pro', name: 'Ada' } })
analytics.group({ userId: 'ada', groupId: 'acme', traits: { industry: 'retail' } })
for (const daysAgo of [1, 3, 3, 6]) {
  analytics.track({ userId: 'ada', event: 'workflow_run', timestamp: new Date(now - daysAgo * day), properties: { steps: 2 } })
}
// A user with one day of use: not a member.
analytics.identify({ userId: 'bob', traits: { plan: 'pro' } })
analytics.group({ userId: 'bob', groupId: 'acme' })
analytics.track({ userId: 'bob', event: 'workflow_run' })

analytics.closeAndFlush({ timeout: 20000 }).then(() => {
  console.log(`requests: ${requests}, failures: ${failures}`)
  process.exit(failures === 0 && requests > 0 ? 0 : 1)
})
