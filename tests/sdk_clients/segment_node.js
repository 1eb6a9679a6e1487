// Drive @segment/analytics-node against a collector and report what went over the wire.
// usage: node segment_node.js <collector-url> <writeKey> <calls.json> [maxEventsInBatch]
// calls.json: [{"call": "track" | "page" | ..., "args": {...the SDK's params...}}, ...]
// stdout: {"sdk", "requests": [{url, headers, body}], "statuses": [...], "errors": [...], "callbackErrors": [...]}
'use strict'
const fs = require('fs')
const { Analytics } = require('@segment/analytics-node')

async function main() {
  const [url, writeKey, callsPath, batchSize] = process.argv.slice(2)
  const calls = JSON.parse(fs.readFileSync(callsPath, 'utf8'))
  const analytics = new Analytics({
    writeKey,
    host: url,
    maxEventsInBatch: Number(batchSize || 15),
    flushInterval: 200,
    maxRetries: 0, // a refusal must show up as an error here, not be retried away
  })
  const out = {
    sdk: '@segment/analytics-node@' + require('@segment/analytics-node/package.json').version,
    requests: [],
    statuses: [],
    errors: [],
    callbackErrors: [],
  }
  analytics.on('http_request', (r) => out.requests.push({ url: r.url, headers: r.headers, body: JSON.parse(r.body) }))
  analytics.on('http_response', (r) => out.statuses.push(r.status))
  analytics.on('error', (e) => out.errors.push({ code: e.code, reason: String(e.reason) }))
  for (const { call, args } of calls) {
    analytics[call](args, (err) => {
      if (err) out.callbackErrors.push(String(err.reason || err))
    })
  }
  await analytics.closeAndFlush({ timeout: 30000 })
  process.stdout.write(JSON.stringify(out))
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack) + '\n')
  process.exit(1)
})
