// The admin console in a real browser: Debian's Chromium driven by playwright-core against the
// issuer on loopback.
//
//   1. /console/: "Sign in" -> the issuer's login page; the admin's password -> back at the
//      console, signed in (authorization code + PKCE, the built-in client `stamp-console`).
//   2. Keys: note the active key; "Rotate now (force)" -> the warning dialog (its text is
//      reported); "Rotate with force" -> the table and the timeline show a new active key.
//      A screenshot of the page is written to `screenshot`.
//   3. Token inspector: a fresh token (valid) and a tampered one (signature fails).
//   4. Users: create a user; the list shows it.
//   5. Audit: filtered by action keys.rotate, the rotation is listed with the admin as actor.
//   6. Sign out through the issuer's end-session endpoint, back at the console, signed out.
//
// Usage: node console_browser.mjs '{"chromium","issuer","username","password","token",
//        "tampered","newUser","newPassword","screenshot","deadlineMs"}'
// Prints a JSON report and exits 0, or prints the failure to stderr and exits 1. Requests to
// anything but the issuer's origin are blocked and reported.

import { runInChromium } from './chromium.mjs';

const cfg = JSON.parse(process.argv[2] ?? '{}');

const origin = new URL(cfg.issuer).origin;
const report = { blocked: [], console_errors: [], csp_violations: 0, steps: {} };

async function activeKid(page) {
  return page.locator('#key-rows tr[data-state="active"]').first().getAttribute('data-kid');
}

async function inspect(page, token) {
  await page.fill('#inspect-token', token);
  await page.click('#inspect-form button[type="submit"]');
  await page.locator('#inspect-result:not([hidden])').waitFor();
  await page.waitForFunction(() => document.querySelectorAll('#check-rows tr').length > 0);
  const checks = await page.$$eval('#check-rows tr', (rows) => Object.fromEntries(
    rows.map((r) => [r.dataset.check, r.dataset.ok]),
  ));
  const verdict = await page.locator('#verdict').textContent();
  // Reset for the next run, so a stale answer cannot pass for a new one.
  await page.evaluate(() => { document.getElementById('check-rows').replaceChildren(); });
  return { checks, verdict };
}

async function main(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.origin === origin) return route.continue();
    report.blocked.push(url.href);
    return route.abort('blockedbyclient');
  });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on('console', (msg) => {
    if (msg.type() === 'error') report.console_errors.push(msg.text());
    if (/Content Security Policy/i.test(msg.text())) report.csp_violations += 1;
  });
  page.on('pageerror', (e) => report.console_errors.push(`pageerror: ${e.message}`));

  // 1. Sign in.
  await page.goto(`${cfg.issuer}/console/`);
  await page.locator('#signed-out:not([hidden])').waitFor();
  await page.click('#sign-in');
  await page.locator('input[name="password"]').waitFor();
  const loginPage = new URL(page.url());
  await page.fill('input[name="username"]', cfg.username);
  await page.fill('input[name="password"]', cfg.password);
  await page.locator('form:has(input[name="password"]) [type="submit"]').click();
  await page.locator('body[data-signed-in="true"]').waitFor();
  await page.locator('#key-rows tr[data-state="active"]').first().waitFor();
  report.steps.sign_in = {
    login_page: `${loginPage.origin}${loginPage.pathname}`,
    client_id: loginPage.searchParams.get('client_id'),
    code_challenge_method: loginPage.searchParams.get('code_challenge_method'),
    url: page.url(),
    who: await page.locator('#who').textContent(),
    session_storage: await page.evaluate(() => Object.keys(sessionStorage)),
  };

  // 2. Keys: forced rotation behind its warning.
  const before = await activeKid(page);
  const timelineBefore = await page.locator('#timeline g[data-kid]').count();
  await page.click('#rotate-force');
  const dialog = page.locator('#force-dialog');
  await dialog.waitFor({ state: 'visible' });
  const warning = await dialog.textContent();
  await page.click('#force-confirm');
  await page.waitForFunction(
    (old) => {
      const row = document.querySelector('#key-rows tr[data-state="active"]');
      return row && row.dataset.kid !== old;
    },
    before,
  );
  const after = await activeKid(page);
  const timeline = await page.$$eval('#timeline g[data-kid]', (rows) => rows.map((g) => ({
    kid: g.dataset.kid,
    state: g.dataset.state,
    // The states drawn, in order (a state's past and future parts count once).
    spans: [...g.querySelectorAll('rect')].map((r) => r.dataset.span)
      .filter((state, i, all) => state !== all[i - 1]),
  })));
  const states = await page.$$eval('#key-rows tr', (rows) => Object.fromEntries(
    rows.map((r) => [r.dataset.kid, r.dataset.state]),
  ));
  await page.screenshot({ path: cfg.screenshot, fullPage: true });
  report.steps.rotate = {
    before,
    after,
    warning,
    dialog_closed: !(await dialog.isVisible()),
    timeline_before: timelineBefore,
    timeline,
    states,
    status: await page.locator('#status').textContent(),
  };

  // 3. The token inspector.
  await page.click('nav a[data-page="inspect"]');
  await page.locator('#page-inspect:not([hidden])').waitFor();
  report.steps.inspect_fresh = await inspect(page, cfg.token);
  report.steps.inspect_tampered = await inspect(page, cfg.tampered);

  // 4. Users: create one.
  await page.click('nav a[data-page="users"]');
  await page.locator('#page-users:not([hidden])').waitFor();
  await page.fill('#new-username', cfg.newUser);
  await page.fill('#new-password', cfg.newPassword);
  await page.fill('#new-roles', 'ops');
  await page.click('#user-create button[type="submit"]');
  const row = page.locator(`#user-rows tr[data-username="${cfg.newUser}"]`);
  await row.waitFor();
  report.steps.users = {
    row: (await row.textContent()).trim(),
    status: await page.locator('#status').textContent(),
  };

  // 5. Audit, filtered.
  await page.click('nav a[data-page="audit"]');
  await page.locator('#page-audit:not([hidden])').waitFor();
  await page.fill('#audit-filter input[name="action"]', 'keys.rotate');
  await page.click('#audit-filter button[type="submit"]');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#audit-rows tr')];
    return rows.length > 0 && rows.every((r) => r.children[2].textContent === 'keys.rotate');
  });
  report.steps.audit = await page.$$eval('#audit-rows tr', (rows) => rows.map(
    (r) => ({ actor: r.children[1].textContent, action: r.children[2].textContent, target: r.children[3].textContent }),
  ));

  // 6. Sign out through the issuer.
  await page.click('#sign-out');
  await page.waitForURL(`${cfg.issuer}/console/`);
  await page.locator('#signed-out:not([hidden])').waitFor();
  report.steps.sign_out = { url: page.url(), signed_out: await page.locator('#signed-out').isVisible() };
  await context.close();
}

await runInChromium('console_browser', cfg, report, main);
