// A relying party built on the `openid-client` npm package drives the authorization code flow
// against a running stamp issuer: discovery, PKCE S256 + state + nonce, the user's sign-in (see
// signin.mjs), the code exchange with the ID token checked by openid-client itself (signature
// through the discovered JWKS, iss, aud, exp, nonce, RFC 9207 iss of the response), userinfo.
// Then a second authorization request from the same "browser" must come back without a form
// (single sign-on), and openid-client must refuse its answer when the expected nonce differs.
//
// Usage: node rp_openid_client.mjs '{"issuer","clientId","clientSecret"|null,"redirectUri",
//        "username","password"}'
// Prints a JSON report and exits 0, or prints the failure to stderr and exits 1.

import * as client from 'openid-client';
import { signIn } from './signin.mjs';

const cfg = JSON.parse(process.argv[2] ?? '{}');

async function main() {
  const auth = cfg.clientSecret ? client.ClientSecretBasic(cfg.clientSecret) : client.None();
  const config = await client.discovery(new URL(cfg.issuer), cfg.clientId, undefined, auth, {
    // A loopback issuer over plain HTTP; everything else about discovery is as in production.
    execute: [client.allowInsecureRequests],
  });
  // Verify ID token signatures from the token endpoint too (with the discovered JWKS), not only
  // rely on the TLS of the back channel.
  client.enableNonRepudiationChecks(config);
  const jar = new Map();

  // 1. A full sign-in: the password is typed.
  const first = await flow(config, jar);
  const claims = first.tokens.claims();
  const userinfo = await client.fetchUserInfo(config, first.tokens.access_token, claims.sub);

  // 2. The same browser again: single sign-on, no form; and a wrong expected nonce is refused.
  const second = await authorize(config, jar);
  let wrongNonce;
  try {
    await client.authorizationCodeGrant(config, new URL(second.callback), {
      pkceCodeVerifier: second.verifier,
      expectedState: second.state,
      expectedNonce: client.randomNonce(),
      idTokenExpected: true,
    });
    wrongNonce = 'accepted';
  } catch (e) {
    wrongNonce = describe(e);
  }

  return {
    server: config.serverMetadata().issuer,
    first_forms: first.forms,
    first_trail: first.trail,
    second_forms: second.forms,
    second_trail: second.trail,
    token_type: first.tokens.token_type,
    has_refresh_token: typeof first.tokens.refresh_token === 'string',
    id_token_header: JSON.parse(Buffer.from(first.tokens.id_token.split('.')[0], 'base64url')),
    claims,
    userinfo,
    wrong_nonce: wrongNonce,
  };
}

// An error and its causes (openid-client wraps the oauth4webapi error that names the claim).
function describe(e) {
  const parts = [];
  for (let c = e; c instanceof Error && parts.length < 5; c = c.cause) {
    parts.push(`${c.code ?? c.name}: ${c.message}`);
    if (c.cause?.claim) parts.push(`claim ${c.cause.claim}`);
  }
  return parts.join(' <- ');
}

async function authorize(config, jar) {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: cfg.redirectUri,
    scope: 'openid profile',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  const done = await signIn(url, cfg.redirectUri, { username: cfg.username, password: cfg.password, jar });
  return { ...done, verifier, state, nonce };
}

async function flow(config, jar) {
  const a = await authorize(config, jar);
  const tokens = await client.authorizationCodeGrant(config, new URL(a.callback), {
    pkceCodeVerifier: a.verifier,
    expectedState: a.state,
    expectedNonce: a.nonce,
    idTokenExpected: true,
  });
  return { ...a, tokens };
}

try {
  console.log(JSON.stringify(await main()));
} catch (e) {
  console.error(`openid-client flow failed: ${describe(e)}`);
  process.exit(1);
}
