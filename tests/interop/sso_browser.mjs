// Single sign-on in a real browser: Debian's Chromium driven by playwright-core through the two
// example apps (bank, retirement) and the issuer, all on loopback.
//
//   1. bank: "Sign in" -> the issuer's login page; the password is typed (the only time) -> back
//      at the bank, signed in.
//   2. retirement: "Sign in" -> signed in without any page of the issuer being shown (every
//      issuer answer on the way is a redirect).
//   3. bank: "Log out" -> the issuer's end-session -> back at the bank, signed out.
//   4. retirement: its next page view checks with the issuer and finds the login ended (signed
//      out); "Sign in" -> the issuer asks for the password again.
//
// Usage: node sso_browser.mjs '{"chromium","issuer","bank","retirement","username","password",
//        "deadlineMs"}'
// Prints a JSON report and exits 0, or prints the failure to stderr and exits 1. Requests to
// anything but the three loopback origins are blocked and reported.

import { runInChromium } from './chromium.mjs';

const cfg = JSON.parse(process.argv[2] ?? '{}');

const allowed = new Set([cfg.issuer, cfg.bank, cfg.retirement].map((u) => new URL(u).origin));
const report = { blocked: [], steps: {} };

async function main(browser) {
  const context = await browser.newContext();
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (allowed.has(url.origin)) return route.continue();
    report.blocked.push(url.href);
    return route.abort('blockedbyclient');
  });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  // Every top-level document answer, to tell a page the issuer showed from a redirect.
  let documents = [];
  page.on('response', (res) => {
    const req = res.request();
    if (req.isNavigationRequest() && req.frame() === page.mainFrame()) {
      documents.push({ url: res.url(), status: res.status() });
    }
  });
  let passwordsTyped = 0;
  const issuerOrigin = new URL(cfg.issuer).origin;
  const fromIssuer = () => documents.filter((d) => new URL(d.url).origin === issuerOrigin);

  // 1. Sign in to the bank with the password.
  await page.goto(`${cfg.bank}/`);
  await page.locator('#signed-out').waitFor();
  await page.click('#sign-in');
  await page.locator('input[name="password"]').waitFor();
  const loginPage = new URL(page.url());
  await page.fill('input[name="username"]', cfg.username);
  await page.fill('input[name="password"]', cfg.password);
  passwordsTyped += 1;
  await Promise.all([
    page.waitForURL(`${cfg.bank}/`),
    page.locator('form:has(input[name="password"]) [type="submit"]').click(),
  ]);
  report.steps.bank_sign_in = {
    login_page: `${loginPage.origin}${loginPage.pathname}`,
    user: await page.locator('#user').textContent(),
    issuer_documents: fromIssuer(),
  };

  // 2. The retirement app: signed in without a password prompt.
  documents = [];
  await page.goto(`${cfg.retirement}/`);
  await page.locator('#signed-out').waitFor();
  await Promise.all([page.waitForURL(`${cfg.retirement}/`), page.click('#sign-in')]);
  report.steps.retirement_sso = {
    user: await page.locator('#user').textContent(),
    issuer_documents: fromIssuer(),
    password_fields: await page.locator('input[type="password"]').count(),
  };

  // 3. Log out at the bank: through the issuer's end_session_endpoint and back.
  documents = [];
  await page.goto(`${cfg.bank}/`);
  await Promise.all([page.waitForURL(`${cfg.bank}/`), page.click('#log-out')]);
  report.steps.bank_log_out = {
    signed_out: await page.locator('#signed-out').count(),
    issuer_documents: fromIssuer(),
  };

  // 4. The retirement app finds the login ended, and signing in asks for the password again.
  documents = [];
  await page.goto(`${cfg.retirement}/`);
  const retirementSignedOut = await page.locator('#signed-out').count();
  const retirementUser = await page.locator('#user').count();
  let issuerAsks = false;
  if (retirementSignedOut) {
    await page.click('#sign-in');
    await page.waitForLoadState();
    issuerAsks = new URL(page.url()).origin === issuerOrigin
      && (await page.locator('input[name="password"]').count()) === 1;
  }
  report.steps.retirement_after_log_out = {
    signed_out: retirementSignedOut,
    user_shown: retirementUser,
    issuer_asks_password: issuerAsks,
    url: page.url(),
  };
  report.passwords_typed = passwordsTyped;
  await context.close();
}

await runInChromium('sso_browser', cfg, report, main);
