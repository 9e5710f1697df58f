"""Signs an access token with PyJWT and a key it generates itself, for the reverse interop test:
stamp::verify must accept tokens it did not produce.

Usage: sign.py ALG ISSUER AUDIENCE
Prints {"jwks": {"keys": [public JWK]}, "token": "..."} as JSON.
"""

import json
import sys
import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    alg, issuer, audience = sys.argv[1:]
    if alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif alg == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        print(f"unsupported alg {alg}", file=sys.stderr)
        return 2
    jwk = json.loads(jwt.get_algorithm_by_name(alg).to_jwk(key.public_key()))
    jwk.update(kid=f"pyjwt-{alg}", use="sig", alg=alg)
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": "pyjwt-user",
        "aud": audience,
        "exp": now + 300,
        "iat": now,
        "nbf": now,
        "jti": uuid.uuid4().hex,
        "client_id": "pyjwt",
        "scope": "orders:read",
    }
    token = jwt.encode(claims, key, algorithm=alg, headers={"kid": jwk["kid"], "typ": "at+jwt"})
    print(json.dumps({"jwks": {"keys": [jwk]}, "token": token}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
