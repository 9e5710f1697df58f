// What the browser scripts share: Debian's Chromium launched headless with nothing leaving the
// machine, a deadline for the whole run, and the ending (the JSON report on stdout and exit 0,
// or the failure and the report so far on stderr and exit 1; 3 when the deadline passed).

import { chromium } from 'playwright-core';

/** Runs `main(browser)` for the script `name` under `cfg.deadlineMs`, then prints `report`. */
export async function runInChromium(name, cfg, report, main) {
  const deadline = setTimeout(() => {
    console.error(`${name}: deadline of ${cfg.deadlineMs} ms passed`);
    process.exit(3);
  }, cfg.deadlineMs);
  const browser = await chromium.launch({
    executablePath: cfg.chromium,
    headless: true,
    args: [
      '--no-sandbox',
      // Nothing leaves the machine: no proxy, no background services, no host names resolved.
      '--no-proxy-server',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
  });
  let failed = null;
  try {
    await main(browser);
  } catch (e) {
    failed = e;
  } finally {
    await browser.close();
    clearTimeout(deadline);
  }
  if (failed) {
    console.error(`${name} failed: ${failed.message}\nreport so far: ${JSON.stringify(report)}`);
    process.exit(1);
  }
  console.log(JSON.stringify(report));
}
