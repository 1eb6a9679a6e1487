// Drive @rudderstack/rudder-sdk-node against a collector and report what went over the wire.
// usage: node rudder_node.js <collector-url> <writeKey> <calls.json> [flushAt]
// calls.json: [{"call": "track" | "page" | ..., "args": {...the SDK's message...}}, ...]
// stdout: {"sdk", "requests": [{url, headers, gzip, body}], "statuses": [...], "errors": [...], "callbackErrors": [...]}
'use strict'
const fs = require('fs')
const zlib = require('zlib')
const Analytics = require('@rudderstack/rudder-sdk-node')
// The axios copy the SDK itself uses, so the interceptors see its real requests.
const axios = require(require.resolve('axios', { paths: [require.resolve('@rudderstack/rudder-sdk-node')] }))

async function main() {
  const [url, writeKey, callsPath, flushAt] = process.argv.slice(2)
  const calls = JSON.parse(fs.readFileSync(callsPath, 'utf8'))
  const out = {
    sdk: '@rudderstack/rudder-sdk-node@' + require('@rudderstack/rudder-sdk-node/package.json').version,
    requests: [],
    statuses: [],
    errors: [],
    callbackErrors: [],
  }
  const axiosInstance = axios.create()
  axiosInstance.interceptors.request.use((config) => {
    const headers = Object.fromEntries(Object.entries(config.headers.toJSON ? config.headers.toJSON() : config.headers))
    const gzip = Buffer.isBuffer(config.data)
    const text = gzip ? zlib.gunzipSync(config.data).toString('utf8') : JSON.stringify(config.data)
    out.requests.push({ url: config.url, headers, gzip, auth: config.auth, body: JSON.parse(text) })
    return config
  })
  axiosInstance.interceptors.response.use(
    (res) => {
      out.statuses.push(res.status)
      return res
    },
    (err) => {
      out.statuses.push(err.response ? err.response.status : String(err.code))
      return Promise.reject(err)
    },
  )
  const client = new Analytics(writeKey, {
    dataPlaneUrl: url,
    flushAt: Number(flushAt || 15),
    flushInterval: 200,
    retryCount: 0,
    logLevel: 'error',
    axiosInstance,
    errorHandler: (err) => out.errors.push(String((err.response && err.response.status) || err.message || err)),
  })
  for (const { call, args } of calls) {
    // JSON has no dates and this SDK insists on Date objects for these two fields.
    for (const field of ['timestamp', 'originalTimestamp']) {
      if (typeof args[field] === 'string') args[field] = new Date(args[field])
    }
    client[call](args, (err) => {
      if (err) out.callbackErrors.push(String(err.message || err))
    })
  }
  // The SDK has no close(): flush until its queue is empty and the last request is answered.
  while (client.queue.length > 0) await client.flush()
  if (client.pendingFlush) await client.pendingFlush.catch(() => {})
  await new Promise((resolve) => setImmediate(resolve)) // the SDK calls back on the next tick
  process.stdout.write(JSON.stringify(out))
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack) + '\n')
  process.exit(1)
})
