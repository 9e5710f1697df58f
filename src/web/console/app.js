// The stamp admin console: a public client of this issuer (client id `stamp-console`). It signs
// in with the authorization code flow and PKCE (S256), keeps the access token in memory only
// (sessionStorage holds nothing but the PKCE verifier, state and nonce between the redirect and
// the return), and calls the admin API with it. No framework, no build step, no inline script:
// the page's Content-Security-Policy allows this file and the same origin only.

const CLIENT_ID = 'stamp-console';
const PENDING = 'stamp-console.pending';
const PAGES = ['keys', 'users', 'clients', 'audit', 'inspect'];

const $ = (id) => document.getElementById(id);

/** What the console knows: the discovery document and the tokens (memory only). */
const session = { config: null, accessToken: null, idToken: null, claims: null };

// ---------------------------------------------------------------------------------------------
// Small helpers.

function status(message, kind = '') {
  const line = $('status');
  line.textContent = message;
  line.className = `status ${kind}`;
}

/** An element with attributes and children (strings become text nodes: never HTML). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function time(unix) {
  if (unix === undefined || unix === null) return '';
  return new Date(unix * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} days`;
}

function base64url(bytes) {
  let text = '';
  for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function random(n = 32) {
  return base64url(crypto.getRandomValues(new Uint8Array(n)));
}

function words(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}

function claimsOf(jwt) {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part));
  } catch {
    return null;
  }
}

/** Asks for confirmation in the page's own dialog (no window.confirm: it blocks automation). */
function confirmAction(title, text, label = 'Confirm') {
  const dialog = $('confirm-dialog');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = label;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.returnValue = '';
    dialog.showModal();
  });
}

// ---------------------------------------------------------------------------------------------
// Sign-in: authorization code + PKCE with this issuer.

async function discover() {
  const res = await fetch(new URL('../.well-known/openid-configuration', location.href));
  if (!res.ok) throw new Error(`discovery failed: HTTP ${res.status}`);
  session.config = await res.json();
}

function redirectUri() {
  return `${session.config.issuer.replace(/\/+$/, '')}/console/`;
}

async function signIn() {
  const verifier = random(32);
  const challenge = base64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  const pending = { verifier, state: random(16), nonce: random(16), page: location.hash || '#keys' };
  sessionStorage.setItem(PENDING, JSON.stringify(pending));
  const url = new URL(session.config.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: CLIENT_ID,
    redirect_uri: redirectUri(),
    scope: 'openid profile',
    state: pending.state,
    nonce: pending.nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();
  location.assign(url.toString());
}

/** Back from /authorize: checks state, exchanges the code. Returns true when signed in. */
async function completeSignIn(params) {
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || 'null');
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, '', `${location.pathname}${pending?.page || '#keys'}`);
  if (!pending || params.get('state') !== pending.state) {
    throw new Error('the sign-in answer does not match a sign-in started here; sign in again');
  }
  if (params.get('error')) {
    throw new Error(`sign-in refused: ${params.get('error_description') || params.get('error')}`);
  }
  const res = await fetch(session.config.token_endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: params.get('code') || '',
      redirect_uri: redirectUri(),
      client_id: CLIENT_ID,
      code_verifier: pending.verifier,
    }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`sign-in failed: ${body.error_description || body.error || res.status}`);
  const idClaims = body.id_token ? claimsOf(body.id_token) : null;
  if (!idClaims || idClaims.nonce !== pending.nonce) throw new Error('the ID token does not carry this sign-in\'s nonce');
  session.accessToken = body.access_token;
  session.idToken = body.id_token;
  session.claims = claimsOf(body.access_token);
  return true;
}

/** The signed-in user's name, from userinfo (the access token carries only the id). */
async function whoAmI() {
  try {
    const res = await fetch(session.config.userinfo_endpoint, {
      headers: { Authorization: `Bearer ${session.accessToken}` },
    });
    const info = await res.json();
    return info.preferred_username || session.claims.sub;
  } catch {
    return session.claims.sub;
  }
}

function signOut() {
  const url = new URL(session.config.end_session_endpoint);
  url.search = new URLSearchParams({
    client_id: CLIENT_ID,
    id_token_hint: session.idToken || '',
    post_logout_redirect_uri: redirectUri(),
  }).toString();
  session.accessToken = null;
  session.idToken = null;
  location.assign(url.toString());
}

// ---------------------------------------------------------------------------------------------
// The admin API.

class ApiError extends Error {
  constructor(status, body) {
    super(body.error_description || body.error || `HTTP ${status}`);
    this.status = status;
    this.code = body.error;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${session.accessToken}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(new URL(`..${path}`, location.href), init);
  if (res.status === 401) {
    showSignedOut('Your session has ended (the access token expired or was revoked). Sign in again.');
    throw new ApiError(401, { error_description: 'signed out' });
  }
  if (res.status === 204) return { data: null, res };
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, data);
  return { data, res };
}

/** Runs an action, reporting success or failure in the status line. */
async function act(what, action) {
  try {
    status(`${what}…`);
    const message = await action();
    status(message || `${what}: done`, 'ok');
  } catch (e) {
    if (e.status !== 401) status(`${what} failed: ${e.message}`, 'error');
  }
}

// ---------------------------------------------------------------------------------------------
// Keys.

/** The key list last shown (the forced-rotation warning quotes its max-age). */
let lastKeys = null;

async function loadKeys() {
  const { data } = await api('GET', '/admin/keys');
  renderKeys(data);
  return data;
}

function renderKeys(list) {
  const facts = $('key-facts');
  facts.replaceChildren();
  const fact = (name, value) => facts.append(el('dt', {}, name), el('dd', {}, value));
  fact('JWKS max-age', `${duration(list.jwks_max_age)} configured, ${duration(list.jwks_max_age_now)} served now`);
  fact('Retired keys stay published', `${duration(list.max_token_ttl + list.leeway)} (longest token lifetime + leeway)`);
  fact('Scheduled rotation', list.rotate_every > 0 ? `every ${duration(list.rotate_every)}` : 'off');
  for (const s of list.schedule) {
    fact(`${s.alg} next rotation`, s.next_rotation_at ? `${time(s.next_rotation_at)} (scheduled)` : 'not scheduled');
    fact(`${s.alg} rotation allowed`, s.rotation_allowed_at
      ? (s.rotation_allowed_at <= list.now ? 'now, without force' : `from ${time(s.rotation_allowed_at)} (earlier only with force)`)
      : 'no next key');
  }
  renderTimeline(list);
  const rows = $('key-rows');
  rows.replaceChildren();
  for (const key of list.keys) {
    const revoke = key.published
      ? el('button', { type: 'button', class: 'small danger', 'data-revoke': key.kid, onclick: () => revokeKey(key.kid) }, 'Revoke')
      : null;
    rows.append(el('tr', { 'data-kid': key.kid, 'data-state': key.state },
      el('td', { class: 'kid', title: key.kid }, key.kid.slice(0, 12) + '…'),
      el('td', {}, key.alg),
      el('td', {}, el('span', { class: `state ${key.state}` }, key.state)),
      el('td', {}, time(key.created_at)),
      el('td', {}, time(key.activated_at)),
      el('td', {}, time(key.retired_at)),
      el('td', {}, time(key.removal_at ?? key.removed_at)),
      el('td', {}, time(key.revoked_at)),
      el('td', {}, revoke)));
  }
  lastKeys = list;
}

/** The key timeline: one row per key, its states as coloured spans on a shared time axis. */
function renderTimeline(list) {
  const keys = list.keys.filter((k) => k.state !== 'removed');
  const now = list.now;
  const window_ = list.jwks_max_age;
  const ends = (k) => k.revoked_at ?? k.removal_at ?? k.removed_at ?? null;
  let start = Math.min(now - window_, ...keys.map((k) => k.created_at));
  let end = Math.max(now + window_, ...keys.map((k) => ends(k) ?? now), ...list.schedule.map((s) => Math.max(s.next_rotation_at ?? now, s.rotation_allowed_at ?? now)));
  const pad = (end - start) * 0.04 || 60;
  start -= pad;
  end += pad;
  const width = 960, left = 130, right = 20, rowH = 26, top = 24;
  const height = top + rowH * Math.max(keys.length, 1) + 28;
  const x = (t) => left + ((t - start) / (end - start)) * (width - left - right);
  const chart = $('timeline');
  chart.replaceChildren();
  chart.setAttribute('viewBox', `0 0 ${width} ${height}`);
  chart.append(svg('title', {}, 'Key timeline'));
  // The JWKS cache window ending now: what a verifier may still hold.
  chart.append(svg('rect', { class: 'window', x: x(now - window_), y: top - 6, width: x(now) - x(now - window_), height: height - top - 16 }));
  keys.forEach((k, i) => {
    const y = top + i * rowH;
    const row = svg('g', { 'data-kid': k.kid, 'data-state': k.state });
    row.append(svg('text', { class: 'row-label', x: 4, y: y + 13 }, `${k.alg} ${k.kid.slice(0, 8)}`));
    // A state from `from` to `to` (null: it goes on); the part after now is drawn lighter, as
    // what the lifecycle will do if nothing changes.
    const span = (from, to, state) => {
      const stop = to ?? end;
      if (from === undefined || from === null || stop <= from) return;
      const part = (a, b, cls) => {
        if (b <= a) return;
        row.append(svg('rect', { class: cls, 'data-span': state, x: x(a), y, width: Math.max(2, x(b) - x(a)), height: rowH - 8, rx: 3 }));
      };
      part(from, Math.min(stop, now), `bar-${state}`);
      part(Math.max(from, now), stop, `bar-${state} future`);
    };
    const activated = k.activated_at ?? null;
    const revoked = k.revoked_at ?? null;
    const leaves = k.removal_at ?? k.removed_at ?? null;
    span(k.created_at, activated ?? revoked, 'next');
    if (activated !== null) span(activated, k.retired_at ?? revoked, 'active');
    if (k.retired_at) span(k.retired_at, revoked ?? leaves, 'retired');
    if (revoked !== null) span(revoked, revoked + (end - start) * 0.01, 'revoked');
    chart.append(row);
  });
  const axisY = height - 22;
  chart.append(svg('line', { class: 'axis', x1: left, x2: width - right, y1: axisY, y2: axisY }));
  for (let i = 0; i <= 4; i += 1) {
    const t = start + ((end - start) * i) / 4;
    chart.append(svg('text', { class: 'tick', x: x(t), y: axisY + 14, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle' }, time(Math.round(t)).slice(5, 16)));
  }
  chart.append(svg('line', { class: 'now', x1: x(now), x2: x(now), y1: top - 10, y2: axisY }));
  chart.append(svg('text', { class: 'tick', x: x(now) + 3, y: top - 12 }, 'now'));
  for (const s of list.schedule) {
    if (s.rotation_allowed_at && s.rotation_allowed_at > now) {
      const at = x(s.rotation_allowed_at);
      chart.append(svg('line', { class: 'allowed', x1: at, x2: at, y1: top - 10, y2: axisY }));
      chart.append(svg('text', { class: 'tick', x: at + 3, y: top - 12 }, `${s.alg} rotation allowed`));
    }
    if (!s.next_rotation_at) continue;
    const at = x(s.next_rotation_at);
    chart.append(svg('line', { class: 'axis', x1: at, x2: at, y1: top - 10, y2: axisY }));
    chart.append(svg('text', { class: 'tick', x: at + 3, y: axisY - 4 }, `${s.alg} rotation`));
  }
}

async function rotate(force) {
  await act(force ? 'Forced rotation' : 'Rotation', async () => {
    try {
      const { data } = await api('POST', '/admin/keys/rotate', { force });
      renderKeys(data);
      const active = data.keys.find((k) => k.state === 'active');
      return `Rotated: ${active ? active.kid : 'a new key'} is active`;
    } catch (e) {
      if (e.code === 'rotation_too_early') {
        throw new Error(`${e.message}. Wait, or use "Rotate now (force)" after reading its warning`);
      }
      throw e;
    }
  });
}

function askForcedRotation() {
  const list = lastKeys;
  const maxAge = list ? duration(list.jwks_max_age) : 'the JWKS max-age';
  $('force-max-age').textContent = maxAge;
  $('force-max-age-2').textContent = maxAge;
  const allowed = list?.schedule.find((s) => s.rotation_allowed_at)?.rotation_allowed_at;
  $('force-allowed').textContent = allowed
    ? (allowed <= list.now ? 'A normal rotation is allowed now.' : `A normal rotation is allowed from ${time(allowed)}.`)
    : '';
  const dialog = $('force-dialog');
  dialog.returnValue = '';
  dialog.addEventListener('close', () => {
    if (dialog.returnValue === 'force') rotate(true);
  }, { once: true });
  dialog.showModal();
}

async function revokeKey(kid) {
  const ok = await confirmAction('Revoke this key?', `Key ${kid} leaves the JWKS at once and every token it signed stops verifying once verifiers refetch. Use this for a compromised key.`, 'Revoke key');
  if (!ok) return;
  await act('Revoking the key', async () => {
    const { data } = await api('POST', `/admin/keys/${encodeURIComponent(kid)}/revoke`);
    renderKeys(data);
    return `Key ${kid} revoked`;
  });
}

// ---------------------------------------------------------------------------------------------
// Users.

let userCursor = null;

async function loadUsers(more = false) {
  const prefix = $('user-prefix').value.trim();
  const query = new URLSearchParams({ limit: '50' });
  if (prefix) query.set('prefix', prefix);
  if (more && userCursor) query.set('after', userCursor);
  const { data } = await api('GET', `/admin/users?${query}`);
  const rows = $('user-rows');
  if (!more) rows.replaceChildren();
  for (const user of data.users) rows.append(userRow(user));
  userCursor = data.next;
  $('user-more').hidden = !data.next;
}

function userRow(user) {
  const state = user.disabled ? 'disabled' : 'enabled';
  return el('tr', { 'data-username': user.username },
    el('td', {}, user.username),
    el('td', { class: 'kid' }, user.id),
    el('td', {}, user.roles.join(' ')),
    el('td', {}, el('span', { class: `state ${state}` }, state)),
    el('td', {}, time(user.created_at_unix)),
    el('td', {},
      el('button', { type: 'button', class: 'small secondary', onclick: () => setUserDisabled(user, !user.disabled) }, user.disabled ? 'Enable' : 'Disable'),
      el('button', { type: 'button', class: 'small secondary', onclick: () => resetPassword(user) }, 'Reset password'),
      el('button', { type: 'button', class: 'small danger', onclick: () => revokeUserTokens(user) }, 'Revoke tokens')));
}

async function setUserDisabled(user, disabled) {
  if (disabled && !(await confirmAction(`Disable ${user.username}?`, 'The user cannot sign in, and every token and session of theirs stops working on the issuer at once.', 'Disable'))) return;
  await act(disabled ? 'Disabling' : 'Enabling', async () => {
    await api('PATCH', `/admin/users/${encodeURIComponent(user.id)}`, { disabled });
    await loadUsers();
    return `${user.username} ${disabled ? 'disabled' : 'enabled'}`;
  });
}

async function revokeUserTokens(user) {
  if (!(await confirmAction(`Revoke every token of ${user.username}?`, 'Refresh tokens and sign-in sessions end at once; access tokens fail every online check. Offline verifiers accept them until they expire.', 'Revoke tokens'))) return;
  await act('Revoking tokens', async () => {
    const { data } = await api('POST', `/admin/users/${encodeURIComponent(user.id)}/revoke-tokens`);
    return `Tokens of ${data.username} revoked (token version ${data.token_version})`;
  });
}

function resetPassword(user) {
  const dialog = $('password-dialog');
  $('password-user').textContent = user.username;
  $('reset-password').value = '';
  dialog.returnValue = '';
  dialog.addEventListener('close', async () => {
    const password = $('reset-password').value;
    $('reset-password').value = '';
    if (dialog.returnValue !== 'ok' || !password) return;
    await act('Resetting the password', async () => {
      await api('POST', `/admin/users/${encodeURIComponent(user.id)}/password`, { password });
      return `Password of ${user.username} reset; their sessions ended`;
    });
  }, { once: true });
  dialog.showModal();
}

async function createUser(event) {
  event.preventDefault();
  const form = event.target;
  const username = $('new-username').value.trim();
  const body = { username, password: $('new-password').value, roles: words($('new-roles').value) };
  await act('Creating the user', async () => {
    await api('POST', '/admin/users', body);
    form.reset();
    $('user-prefix').value = username;
    await loadUsers();
    return `User ${username} created`;
  });
}

// ---------------------------------------------------------------------------------------------
// Clients.

async function loadClients() {
  const { data } = await api('GET', '/admin/clients');
  const filter = $('client-filter').value.trim().toLowerCase();
  const rows = $('client-rows');
  rows.replaceChildren();
  for (const client of data.filter((c) => c.id.toLowerCase().includes(filter))) {
    const state = client.disabled ? 'disabled' : 'enabled';
    rows.append(el('tr', { 'data-client': client.id },
      el('td', { class: 'kid' }, client.id),
      el('td', {}, `${client.public ? 'public' : 'confidential'}${client.first_party ? '' : ', third-party'}`),
      el('td', {}, client.grants.join(' ')),
      el('td', {}, client.scopes.join(' ')),
      el('td', {}, el('span', { class: `state ${state}` }, state)),
      el('td', {},
        el('button', { type: 'button', class: 'small secondary', onclick: () => setClientEnabled(client, client.disabled) }, client.disabled ? 'Enable' : 'Disable'),
        client.public ? null : el('button', { type: 'button', class: 'small danger', onclick: () => rotateSecret(client) }, 'Rotate secret'))));
  }
}

async function setClientEnabled(client, enabled) {
  if (!enabled && !(await confirmAction(`Disable ${client.id}?`, 'The client cannot get tokens any more, and its own tokens fail every online check.', 'Disable'))) return;
  await act(enabled ? 'Enabling' : 'Disabling', async () => {
    await api('PATCH', `/admin/clients/${encodeURIComponent(client.id)}`, { enabled });
    await loadClients();
    return `${client.id} ${enabled ? 'enabled' : 'disabled'}`;
  });
}

function showSecret(id, secret) {
  $('secret-client').textContent = id;
  $('secret-value').textContent = secret;
  $('secret-box').hidden = false;
}

async function rotateSecret(client) {
  if (!(await confirmAction(`New secret for ${client.id}?`, 'The current secret stops working at once; the new one is shown only once.', 'Rotate secret'))) return;
  await act('Rotating the secret', async () => {
    const { data } = await api('POST', `/admin/clients/${encodeURIComponent(client.id)}/secret`, {});
    showSecret(client.id, data.client_secret);
    return `New secret for ${client.id}`;
  });
}

async function createClient(event) {
  event.preventDefault();
  const form = event.target;
  const body = {
    id: $('new-client-id').value.trim(),
    public: $('new-client-public').checked,
    grants: words($('new-client-grants').value),
    scopes: words($('new-client-scopes').value),
    redirect_uris: words($('new-client-redirects').value),
  };
  await act('Creating the client', async () => {
    const { data } = await api('POST', '/admin/clients', body);
    form.reset();
    if (data.client_secret) showSecret(data.id, data.client_secret);
    await loadClients();
    return `Client ${data.id} created`;
  });
}

// ---------------------------------------------------------------------------------------------
// Audit.

let auditCursor = null;

async function loadAudit(more = false) {
  const field = (name) => $('audit-filter').elements.namedItem(name);
  const query = new URLSearchParams({ limit: '100' });
  for (const name of ['actor', 'action', 'subject']) {
    const value = field(name).value.trim();
    if (value) query.set(name, value);
  }
  for (const name of ['since', 'until']) {
    const value = field(name).value;
    if (value) query.set(name, String(Math.floor(new Date(value).getTime() / 1000)));
  }
  if (more && auditCursor) query.set('before', auditCursor);
  const { data, res } = await api('GET', `/admin/audit?${query}`);
  const rows = $('audit-rows');
  if (!more) rows.replaceChildren();
  for (const e of data) {
    rows.append(el('tr', {},
      el('td', {}, time(e.at)), el('td', {}, e.actor), el('td', {}, e.action),
      el('td', { class: 'kid' }, e.target ?? ''), el('td', {}, e.detail ?? '')));
  }
  auditCursor = res.headers.get('X-Next-Cursor');
  $('audit-more').hidden = !auditCursor;
}

// ---------------------------------------------------------------------------------------------
// Token inspector.

async function inspect(token) {
  await act('Inspecting', async () => {
    const { data } = await api('POST', '/admin/tokens/inspect', { token });
    $('inspect-result').hidden = false;
    const failed = data.checks.filter((c) => c.ok === false).map((c) => c.name);
    const verdict = $('verdict');
    verdict.className = `verdict ${data.valid ? 'valid' : 'invalid'}`;
    verdict.textContent = data.valid
      ? 'Valid: the issuer accepts this token now.'
      : `Not valid: ${failed.join(', ') || 'a check could not run'} failed.`;
    const rows = $('check-rows');
    rows.replaceChildren();
    for (const c of data.checks) {
      const [cls, word] = c.ok === true ? ['pass', 'pass'] : c.ok === false ? ['fail', 'FAIL'] : ['skip', 'not run'];
      rows.append(el('tr', { 'data-check': c.name, 'data-ok': String(c.ok) },
        el('th', { scope: 'row' }, c.name), el('td', { class: cls }, word), el('td', {}, c.detail)));
    }
    $('token-header').textContent = JSON.stringify(data.header, null, 2);
    $('token-claims').textContent = JSON.stringify(data.claims, null, 2);
    return data.valid ? 'The token is valid' : `The token is not valid (${failed.join(', ')})`;
  });
}

// ---------------------------------------------------------------------------------------------
// Pages.

const loaders = {
  keys: () => loadKeys(),
  users: () => loadUsers(),
  clients: () => loadClients(),
  audit: () => loadAudit(),
  inspect: async () => {},
};

function showSignedOut(message) {
  session.accessToken = null;
  $('nav').hidden = true;
  $('sign-out').hidden = true;
  $('who').textContent = '';
  for (const page of PAGES) $(`page-${page}`).hidden = true;
  $('signed-out').hidden = false;
  if (message) status(message, 'error');
}

async function show() {
  if (!session.accessToken) return;
  const page = PAGES.includes(location.hash.slice(1)) ? location.hash.slice(1) : 'keys';
  for (const name of PAGES) $(`page-${name}`).hidden = name !== page;
  for (const link of document.querySelectorAll('nav a')) {
    if (link.dataset.page === page) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${$(`page-${page}`).dataset.title} · stamp console`;
  try {
    await loaders[page]();
  } catch (e) {
    if (e.status !== 401) status(`Loading ${page} failed: ${e.message}`, 'error');
  }
}

function wire() {
  $('sign-in').addEventListener('click', () => signIn().catch((e) => status(e.message, 'error')));
  $('sign-out').addEventListener('click', signOut);
  $('rotate').addEventListener('click', () => rotate(false));
  $('rotate-force').addEventListener('click', askForcedRotation);
  $('user-search').addEventListener('submit', (e) => { e.preventDefault(); act('Searching', () => loadUsers().then(() => 'Users loaded')); });
  $('user-more').addEventListener('click', () => act('Loading', () => loadUsers(true).then(() => 'More users loaded')));
  $('user-create').addEventListener('submit', createUser);
  $('client-search').addEventListener('submit', (e) => { e.preventDefault(); act('Searching', () => loadClients().then(() => 'Clients loaded')); });
  $('client-create').addEventListener('submit', createClient);
  $('audit-filter').addEventListener('submit', (e) => { e.preventDefault(); act('Filtering', () => loadAudit().then(() => 'Audit log loaded')); });
  $('audit-more').addEventListener('click', () => act('Loading', () => loadAudit(true).then(() => 'Older events loaded')));
  $('inspect-form').addEventListener('submit', (e) => { e.preventDefault(); inspect($('inspect-token').value.trim()); });
  $('inspect-mine').addEventListener('click', () => { $('inspect-token').value = session.accessToken; inspect(session.accessToken); });
  window.addEventListener('hashchange', show);
}

async function start() {
  wire();
  try {
    await discover();
    const params = new URLSearchParams(location.search);
    if (params.has('code') || params.has('error')) await completeSignIn(params);
  } catch (e) {
    showSignedOut(e.message);
    return;
  }
  if (!session.accessToken) {
    showSignedOut();
    return;
  }
  if (!(session.claims?.roles || []).includes('admin')) {
    showSignedOut('Signed in, but this account does not have the admin role.');
    return;
  }
  $('signed-out').hidden = true;
  $('nav').hidden = false;
  $('sign-out').hidden = false;
  $('who').textContent = `signed in as ${await whoAmI()}`;
  document.body.dataset.signedIn = 'true';
  status('Signed in', 'ok');
  await show();
}

start();
