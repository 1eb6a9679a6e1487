// Open a page in headless Debian Chromium (driven by playwright-core) and report its network traffic.
// usage: node browser_page.js <page-url> <user-data-dir> <collector-url> <expected-event-posts>
// The page sets window.__result when its own calls have resolved; we then wait until the
// collector has answered <expected-event-posts> event POSTs and nothing is in flight.
// stdout: {"result", "requests": [{url, method, status, body, failure}], "console": [...]}
'use strict'
const { run } = require('./chromium')

const DEADLINE_MS = 45000
const [pageUrl, userDataDir, collectorUrl, expected] = process.argv.slice(2)
const ARGS = ['--disable-quic', '--disable-component-update', '--disable-sync']

run(userDataDir, { timeout: DEADLINE_MS, args: ARGS }, async (context) => {
  const out = { requests: [], console: [] }
  const page = context.pages()[0] || (await context.newPage())
  const pending = new Set()
  const record = (request, status, failure) => {
    pending.delete(request)
    out.requests.push({ url: request.url(), method: request.method(), status, body: request.postData(), failure })
  }
  page.on('request', (r) => pending.add(r))
  // 'response', not 'requestfinished': with this Chromium, Playwright never reports the
  // CORS-preflighted event POSTs as finished, though their responses arrive.
  page.on('response', (r) => record(r.request(), r.status(), null))
  page.on('requestfailed', (r) => record(r, null, r.failure() ? r.failure().errorText : 'failed'))
  page.on('console', (m) => out.console.push(`${m.type()}: ${m.text()}`))
  page.on('pageerror', (e) => out.console.push(`pageerror: ${e.message}`))

  await page.goto(pageUrl, { timeout: DEADLINE_MS })
  await page.waitForFunction(() => window.__result, null, { timeout: DEADLINE_MS })
  out.result = await page.evaluate(() => window.__result)
  const end = Date.now() + DEADLINE_MS
  const posted = () => out.requests.filter((r) => r.method === 'POST' && r.url.startsWith(collectorUrl)).length
  while ((pending.size > 0 || posted() < Number(expected)) && Date.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  out.pendingAtEnd = [...pending].map((r) => r.url())
  return out
})
