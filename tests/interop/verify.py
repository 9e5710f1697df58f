"""Verifies a stamp access token with PyJWT, an independent library that fetches the JWKS itself.

Usage: verify.py JWKS_URI ISSUER AUDIENCE ALG TOKEN
Prints the verified claims as JSON and exits 0, or prints the reason to stderr and exits 1.
"""

import json
import sys

import jwt


def main() -> int:
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    jwks_uri, issuer, audience, alg, token = sys.argv[1:]
    try:
        # RFC 9068 section 4: the resource server checks the media type before anything else.
        header = jwt.get_unverified_header(token)
        if header.get("typ") != "at+jwt":
            raise jwt.InvalidTokenError(f"typ is {header.get('typ')!r}, expected 'at+jwt'")
        client = jwt.PyJWKClient(jwks_uri, cache_keys=False)
        signing_key = client.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            signing_key.key,
            algorithms=[alg],
            audience=audience,
            issuer=issuer,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"]},
        )
    except Exception as e:  # every failure is a rejection with its reason
        print(f"rejected by PyJWT {jwt.__version__}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"verifier": f"pyjwt {jwt.__version__}", "header": header, "claims": claims}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
