// Open every Superset dashboard in headless Debian Chromium (playwright-core): log in through Superset's form,
// then for each dashboard wait until every chart has rendered, collect page errors, failed requests, chart
// error messages and every request's URL (the test checks none leaves loopback), and save a screenshot.
// usage: node superset_dashboards.js <superset-url> <user-data-dir> <screenshot-dir> <username> <password> <slug>...
// stdout: {"login": url, "dashboards": {slug: {title, charts, chartErrors, emptyCharts, blankCharts, errors, failed,
//   requests, screenshot}}}
'use strict'
const path = require('path')
const { run } = require('./chromium')

const DEADLINE_MS = 120000
const [superset, userDataDir, screenshotDir, username, password, ...slugs] = process.argv.slice(2)
// WebGL for deck.gl without a GPU: SwiftShader, Chromium's software renderer.
const ARGS = ['--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist']

run(userDataDir, { timeout: DEADLINE_MS, viewport: { width: 1600, height: 1000 }, args: ARGS }, async (context) => {
  const out = { dashboards: {} }
  const page = context.pages()[0] || (await context.newPage())
  page.setDefaultTimeout(DEADLINE_MS)
  let current = null
  const record = () => current || (out.beforeDashboards = out.beforeDashboards || { errors: [], failed: [], requests: [] })
  page.on('pageerror', (e) => record().errors.push(e.message))
  page.on('console', (m) => { if (m.type() === 'error') record().errors.push('console: ' + m.text()) })
  page.on('request', (r) => record().requests.push(r.url()))
  page.on('requestfailed', (r) => record().failed.push(`${r.url()} ${r.failure() && r.failure().errorText}`))
  page.on('response', (r) => { if (r.status() >= 400) record().failed.push(`${r.url()} HTTP ${r.status()}`) })

  await page.goto(`${superset}/login/`)
  await page.waitForSelector('input#username, input[name="username"]')
  await page.fill('input#username, input[name="username"]', username)
  await page.fill('input#password, input[name="password"]', password)
  // Every main-frame response while logging in (status, URL, redirect): when the browser lands back on the
  // login page, the error says which step lost the session instead of only timing out.
  const chain = []
  const onResponse = (r) => {
    if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) {
      chain.push(`${r.request().method()} ${r.url()} -> ${r.status()} ${r.headers().location || ''}`.trim())
    }
  }
  page.on('response', onResponse)
  try {
    await Promise.all([page.waitForURL((url) => !url.pathname.startsWith('/login'), { timeout: 60000 }), page.keyboard.press('Enter')])
  } catch (err) {
    const shown = await page.evaluate(() => document.body.innerText.slice(0, 300)).catch(() => '')
    throw new Error(`the login form did not leave /login: ${err.message.split('\n')[0]}\n` +
      `navigations: ${JSON.stringify(chain)}\npage says: ${JSON.stringify(shown)}`)
  }
  page.off('response', onResponse)
  out.login = page.url()

  for (const slug of slugs) {
    current = { errors: [], failed: [], requests: [] }
    out.dashboards[slug] = current
    await page.goto(`${superset}/superset/dashboard/${slug}/?standalone=1`)
    await page.waitForSelector('.dashboard-component-chart-holder')
    // Every chart holder has rendered something that is not a loading spinner.
    await page.waitForFunction(() => {
      const holders = [...document.querySelectorAll('.dashboard-component-chart-holder')]
      return holders.length > 0 && holders.every((h) => !h.querySelector('.loading, [aria-label="Loading"]') &&
        h.querySelector('canvas, svg, table, .header-line, .superset-legacy-chart-big-number, .big_number, [data-test="chart-container"] *, .ant-alert, .error-alert'))
    })
    await page.waitForTimeout(2500) // animations and deck.gl's first frame
    current.title = await page.title()
    current.charts = await page.$$eval('.dashboard-component-chart-holder', (els) => els.length)
    current.chartErrors = await page.$$eval(
      '.dashboard-component-chart-holder .ant-alert-error, .dashboard-component-chart-holder [role="alert"], .dashboard-component-chart-holder .error-alert',
      (els) => els.map((e) => e.textContent.trim()).filter(Boolean))
    current.emptyCharts = await page.$$eval('.dashboard-component-chart-holder', (els) =>
      els.filter((e) => /No results were returned|No data/i.test(e.textContent)).map((e) => e.textContent.trim().slice(0, 80)))
    // A chart that rendered but drew nothing (zero-sized canvas, svg or table) is blank, whatever the data's size.
    current.blankCharts = await page.$$eval('.dashboard-component-chart-holder', (els) =>
      els.filter((h) => ![...h.querySelectorAll('canvas, svg, table, .header-line, .superset-legacy-chart-big-number, .big_number')]
        .some((e) => { const r = e.getBoundingClientRect(); return r.width > 10 && r.height > 10 }))
        .map((h) => h.textContent.trim().slice(0, 80)))
    current.screenshot = path.join(screenshotDir, `${slug}.png`)
    await page.screenshot({ path: current.screenshot, fullPage: true })
  }
  current = null
  return out
})
