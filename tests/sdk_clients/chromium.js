// Shared by the page scripts: Debian's Chromium, headless, through playwright-core; and how a script
// reports (its JSON on stdout, or its error on stderr and exit 1).
'use strict'
const { chromium } = require('playwright-core')

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking']

function launch(userDataDir, { timeout, viewport, args = [] }) {
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    timeout,
    ...(viewport ? { viewport } : {}),
    args: [...ARGS, ...args],
  })
}

// Run `body(context)` in a browser context, close it whatever happens, print what it returns.
function run(userDataDir, options, body) {
  const main = async () => {
    const context = await launch(userDataDir, options)
    let out
    try {
      out = await body(context)
    } finally {
      await context.close()
    }
    process.stdout.write(JSON.stringify(out))
  }
  main().catch((err) => {
    process.stderr.write(String(err && err.stack ? err.stack : err) + '\n')
    process.exit(1)
  })
}

module.exports = { launch, run }
