// Verifies a stamp access token with the `jose` npm package, which fetches the JWKS itself.
//
// Usage: node verify.mjs JWKS_URI ISSUER AUDIENCE ALG TOKEN
// Prints the verified claims as JSON and exits 0, or prints the reason to stderr and exits 1.
// `jose` is resolved from the folder this file is run from (the test copies it next to
// node_modules/jose), so nothing is vendored into the repository.

import { createRemoteJWKSet, jwtVerify } from 'jose';

const args = process.argv.slice(2);
if (args.length !== 5) {
  console.error('usage: node verify.mjs JWKS_URI ISSUER AUDIENCE ALG TOKEN');
  process.exit(2);
}
const [jwksUri, issuer, audience, alg, token] = args;

try {
  const jwks = createRemoteJWKSet(new URL(jwksUri));
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer,
    audience,
    algorithms: [alg],
    typ: 'at+jwt',
    requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti'],
  });
  console.log(JSON.stringify({ verifier: 'jose', header: protectedHeader, claims: payload }));
} catch (e) {
  console.error(`rejected by jose: ${e.code ?? e.name}: ${e.message}`);
  process.exit(1);
}
