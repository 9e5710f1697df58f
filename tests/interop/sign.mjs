// Signs an access token with `jose` and a key it generates itself, for the reverse interop test:
// stamp::verify must accept tokens it did not produce.
//
// Usage: node sign.mjs ALG ISSUER AUDIENCE
// Prints {"jwks": {"keys": [public JWK]}, "token": "..."} as JSON.

import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';

const args = process.argv.slice(2);
if (args.length !== 3) {
  console.error('usage: node sign.mjs ALG ISSUER AUDIENCE');
  process.exit(2);
}
const [alg, issuer, audience] = args;

const { publicKey, privateKey } = await generateKeyPair(alg);
const jwk = { ...(await exportJWK(publicKey)), kid: `jose-${alg}`, use: 'sig', alg };
const now = Math.floor(Date.now() / 1000);
const token = await new SignJWT({ client_id: 'jose', scope: 'orders:read' })
  .setProtectedHeader({ alg, kid: jwk.kid, typ: 'at+jwt' })
  .setIssuer(issuer)
  .setSubject('jose-user')
  .setAudience(audience)
  .setIssuedAt(now)
  .setNotBefore(now)
  .setExpirationTime(now + 300)
  .setJti(randomUUID())
  .sign(privateKey);
console.log(JSON.stringify({ jwks: { keys: [jwk] }, token }));
