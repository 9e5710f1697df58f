// The user's part of an authorization request, scripted without a browser: open the
// authorization URL, fill in the issuer's hosted login form (its CSRF field included, with the
// pre-login cookie), approve a consent form if one is shown, and stop at the redirect to the
// client's redirect URI, which nothing needs to listen on: its URL is the authorization response.
//
// Used by rp_openid_client.mjs. The issuer's cookies live in `jar` (a Map), so a second call with
// the same jar shows single sign-on: no form, straight to the redirect URI.

const MAX_STEPS = 10;

export async function signIn(authorizationUrl, redirectUri, { username, password, jar }) {
  let url = new URL(authorizationUrl);
  let init = { method: 'GET' };
  const trail = [];
  for (let step = 0; step < MAX_STEPS; step++) {
    const res = await fetch(url, { ...init, redirect: 'manual', headers: { ...init.headers, cookie: cookieHeader(jar) } });
    keepCookies(jar, res);
    trail.push(`${init.method} ${url.pathname} -> ${res.status}`);
    if (res.status >= 300 && res.status < 400) {
      const location = new URL(res.headers.get('location'), url);
      if (location.href.startsWith(redirectUri)) {
        return { callback: location.href, trail, forms: trail.filter((t) => t.startsWith('POST')).length };
      }
      url = location;
      init = { method: 'GET' };
      continue;
    }
    const html = await res.text();
    if (res.status !== 200) {
      throw new Error(`${url.pathname} answered ${res.status}: ${html.slice(0, 300)} (trail: ${trail.join(', ')})`);
    }
    const form = parseForm(html);
    if (!form) {
      throw new Error(`${url.pathname} shows no form: ${html.slice(0, 300)} (trail: ${trail.join(', ')})`);
    }
    if ('password' in form.fields) {
      form.fields.username = username;
      form.fields.password = password;
    }
    url = new URL(form.action || url.href, url);
    init = {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form.fields).toString(),
    };
  }
  throw new Error(`no redirect to ${redirectUri} after ${MAX_STEPS} steps: ${trail.join(', ')}`);
}

// The first POST form of the page: its action and the fields a browser would send (hidden and
// text inputs with their values, and the first submit button that has a name, as if clicked).
export function parseForm(html) {
  const match = /<form\b([^>]*)>([\s\S]*?)<\/form>/gi;
  for (const [, attrs, inner] of html.matchAll(match)) {
    if (!/method\s*=\s*["']?post/i.test(attrs)) continue;
    const fields = {};
    let clicked = false;
    for (const [tag] of inner.matchAll(/<(input|button)\b[^>]*>/gi)) {
      const name = attr(tag, 'name');
      if (name === undefined) continue;
      const type = (attr(tag, 'type') ?? (tag.toLowerCase().startsWith('<button') ? 'submit' : 'text')).toLowerCase();
      if (type === 'submit') {
        if (clicked) continue;
        clicked = true;
      }
      fields[name] = attr(tag, 'value') ?? '';
    }
    return { action: attr(attrs, 'action'), fields };
  }
  return null;
}

function attr(tag, name) {
  const m = new RegExp(`\\b${name}\\s*=\\s*("([^"]*)"|'([^']*)'|([^\\s>]+))`, 'i').exec(tag);
  if (!m) return undefined;
  return unescapeHtml(m[2] ?? m[3] ?? m[4]);
}

function unescapeHtml(s) {
  return s
    .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(parseInt(d, 10)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function keepCookies(jar, res) {
  for (const line of res.headers.getSetCookie()) {
    const [pair, ...attrs] = line.split(';');
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    const expired = attrs.some((a) => /^\s*max-age\s*=\s*0\s*$/i.test(a)) || value === '';
    if (expired) jar.delete(name);
    else jar.set(name, value);
  }
}

function cookieHeader(jar) {
  return [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
}
