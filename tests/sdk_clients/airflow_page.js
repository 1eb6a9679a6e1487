// Open the Trackway page of a running Airflow API server in headless Debian Chromium via playwright-core:
// anonymously (Airflow's login page must come up), sign in through that form, land back on the page,
// screenshot it, then open it framed inside Airflow's UI (Browse > Trackway) and screenshot that too.
// usage: node airflow_page.js <airflow-url> <user-data-dir> <screenshot.png> <username> <password>
// stdout: {"anonymousUrl", "afterLoginUrl", "title", "h1", "scripts", "xss", "dialogs", "errors", "embedded": {...}}
'use strict'
const { run } = require('./chromium')

const DEADLINE_MS = 90000
const [airflow, userDataDir, screenshot, username, password] = process.argv.slice(2)

run(userDataDir, { timeout: DEADLINE_MS, viewport: { width: 1400, height: 1000 } }, async (context) => {
  const out = { dialogs: [], errors: [], requests: [] }
  const page = context.pages()[0] || (await context.newPage())
  page.setDefaultTimeout(DEADLINE_MS)
  page.on('dialog', async (d) => { out.dialogs.push(d.message()); await d.dismiss() })
  page.on('pageerror', (e) => out.errors.push(e.message))
  page.on('request', (r) => out.requests.push(r.url()))
  const pageUrl = `${airflow}/trackway/`

  // Anonymous: Airflow's login form, with the page as where to come back to.
  await page.goto(pageUrl)
  await page.waitForSelector('input[name="username"]')
  out.anonymousUrl = page.url()
  await page.fill('input[name="username"]', username)
  await page.fill('input[name="password"]', password)
  await Promise.all([
    page.waitForURL((url) => url.href.startsWith(pageUrl)),
    page.click('button[type="submit"]'),
  ])
  await page.waitForSelector('h1')
  out.afterLoginUrl = page.url()
  out.title = await page.title()
  out.h1 = await page.textContent('h1')
  out.scripts = await page.$$eval('script', (els) => els.length)
  out.xss = await page.evaluate(() => window.__xss === undefined ? null : String(window.__xss))
  out.problems = await page.$$eval('.problem', (els) => els.map((e) => e.textContent))
  await page.screenshot({ path: screenshot, fullPage: true })

  // Inside Airflow's UI: the nav entry's route frames the page.
  await page.goto(`${airflow}/plugin/trackway`)
  const frame = await (await page.waitForSelector('iframe[title="Trackway"]')).contentFrame()
  await frame.waitForSelector('h1')
  out.embedded = {
    url: page.url(),
    frameUrl: frame.url(),
    h1: await frame.textContent('h1'),
    xss: await frame.evaluate(() => window.__xss === undefined ? null : String(window.__xss)),
  }
  await page.screenshot({ path: screenshot.replace(/\.png$/, '-in-airflow.png'), fullPage: false })
  return out
})
