// node-oidc-provider 9 configured like the stamp issuer under load: one service client, the
// client_credentials grant, ES256 JWT access tokens (RFC 9068 `at+jwt`) with aud "stamp", the
// same scope and a 900 s lifetime. Started by bench/load.sh --peer from target/bench/peer, where
// the script installs oidc-provider@9. Usage: node server.mjs PORT CLIENT_ID CLIENT_SECRET SCOPE
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, scope] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const resource = 'urn:stamp:bench';

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-es256', alg: 'ES256', use: 'sig' };

const provider = new Provider(issuer, {
  jwks: { keys: [signingKey] },
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_post',
    id_token_signed_response_alg: 'ES256',
  }],
  scopes: [scope],
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
  ttl: { ClientCredentials: 900 },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // No `resource` parameter in the request: every token is for the one resource server.
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator) => {
        if (indicator !== resource) throw new Provider.errors.InvalidTarget();
        return {
          scope,
          audience: 'stamp',
          accessTokenTTL: 900,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
});

provider.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(`peer listening on ${issuer}\n`);
});
