// Open the data dictionary (a local HTML file) in headless Debian Chromium via playwright-core,
// search it, and take screenshots.
// usage: node plan_docs_page.js <file-url> <user-data-dir> <screenshot.png> <search-text>
// stdout: {"title", "cards", "visibleBefore", "visibleAfter", "countText", "requests": [...], "errors": [...]}
'use strict'
const { run } = require('./chromium')

const DEADLINE_MS = 45000
const [fileUrl, userDataDir, screenshot, query] = process.argv.slice(2)

run(userDataDir, { timeout: DEADLINE_MS, viewport: { width: 1280, height: 1600 } }, async (context) => {
  const out = { requests: [], errors: [] }
  const page = context.pages()[0] || (await context.newPage())
  page.on('request', (r) => out.requests.push(r.url()))
  page.on('pageerror', (e) => out.errors.push(e.message))
  page.on('console', (m) => { if (m.type() === 'error') out.errors.push(m.text()) })
  await page.goto(fileUrl, { timeout: DEADLINE_MS })
  const visible = () => page.$$eval('section.event', (els) => els.filter((e) => e.offsetParent !== null).length)
  out.title = await page.title()
  out.cards = await page.$$eval('section.event', (els) => els.length)
  out.visibleBefore = await visible()
  await page.screenshot({ path: screenshot, fullPage: false })
  await page.fill('#search', query)
  out.visibleAfter = await visible()
  out.visibleNames = await page.$$eval('section.event', (els) =>
    els.filter((e) => e.offsetParent !== null).map((e) => e.querySelector('h2').textContent))
  out.countText = await page.textContent('#count')
  await page.screenshot({ path: screenshot.replace(/\.png$/, '-search.png'), fullPage: false })
  return out
})
