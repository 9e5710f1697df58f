"""A relying party built on Authlib (with requests) drives the authorization code flow against a
running stamp issuer: discovery, PKCE S256 + state + nonce through Authlib's OAuth2Session, the
user's sign-in (the hosted login form posted with its CSRF field and pre-login cookie), the code
exchange, the ID token validated by Authlib (`authlib.jose.jwt` with the discovered JWKS, then
`CodeIDToken`: iss, aud, exp, iat, nonce, at_hash), userinfo. A copy of the ID token with one
signature character changed must be refused by the same validation.

Usage: rp_authlib.py '{"issuer","clientId","clientSecret"|null,"redirectUri","username","password"}'
Prints a JSON report and exits 0, or prints the failure to stderr and exits 1.
"""

import html
import json
import re
import sys
import warnings
from urllib.parse import parse_qs, urljoin, urlparse

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

with warnings.catch_warnings():
    # authlib.jose is deprecated in favour of joserfc but still Authlib's OpenID Connect path.
    warnings.simplefilter("ignore")
    from authlib.jose import JsonWebKey, jwt
    from authlib.oidc.core import CodeIDToken

MAX_STEPS = 10


def main() -> dict:
    cfg = json.loads(sys.argv[1])
    issuer = cfg["issuer"]
    http = requests.Session()
    http.trust_env = False  # loopback only, never a proxy
    meta = get_json(http, issuer.rstrip("/") + "/.well-known/openid-configuration")
    if meta["issuer"] != issuer:
        raise RuntimeError(f"discovery names issuer {meta['issuer']!r}")

    secret = cfg.get("clientSecret")
    oauth = OAuth2Session(
        client_id=cfg["clientId"],
        client_secret=secret,
        scope="openid profile",
        redirect_uri=cfg["redirectUri"],
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic" if secret else "none",
    )
    oauth.trust_env = False
    verifier = generate_token(48)
    nonce = generate_token(32)
    url, state = oauth.create_authorization_url(
        meta["authorization_endpoint"], nonce=nonce, code_verifier=verifier
    )
    callback, forms = sign_in(http, url, cfg["redirectUri"], cfg["username"], cfg["password"])
    answer = parse_qs(urlparse(callback).query)
    # RFC 9207: the answer names its issuer (Authlib does not check this itself).
    if meta.get("authorization_response_iss_parameter_supported") and answer.get("iss") != [issuer]:
        raise RuntimeError(f"authorization response iss is {answer.get('iss')!r}")
    token = oauth.fetch_token(
        meta["token_endpoint"],
        authorization_response=callback,
        state=state,
        code_verifier=verifier,
    )

    jwks = JsonWebKey.import_key_set(get_json(http, meta["jwks_uri"]))
    claims = validate(token["id_token"], jwks, issuer, cfg["clientId"], nonce, token["access_token"])
    header = json.loads(b64url(token["id_token"].split(".")[0]))

    userinfo = oauth.get(meta["userinfo_endpoint"])
    userinfo.raise_for_status()
    userinfo = userinfo.json()
    if userinfo.get("sub") != claims["sub"]:
        raise RuntimeError("userinfo describes another subject")

    try:
        validate(forge(token["id_token"]), jwks, issuer, cfg["clientId"], nonce, token["access_token"])
        forged = "accepted"
    except Exception as e:  # noqa: BLE001 - the report names whatever refused it
        forged = f"{type(e).__name__}: {e}"

    return {
        "forms": forms,
        "token_type": token.get("token_type"),
        "has_refresh_token": "refresh_token" in token,
        "id_token_header": header,
        "claims": dict(claims),
        "userinfo": userinfo,
        "forged": forged,
    }


def validate(id_token, jwks, issuer, client_id, nonce, access_token):
    claims = jwt.decode(
        id_token,
        jwks,
        claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": issuer}},
        claims_params={"nonce": nonce, "client_id": client_id, "access_token": access_token},
    )
    claims.validate(leeway=5)
    return claims


def sign_in(http, url, redirect_uri, username, password):
    """Follows the issuer's pages like a browser would, filling the login form, until the
    redirect to the client's redirect URI; returns that URL and how many forms were posted."""
    method, data, forms, jar = "GET", None, 0, {}
    for _ in range(MAX_STEPS):
        cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
        res = http.request(
            method, url, data=data, headers={"Cookie": cookie} if cookie else {}, allow_redirects=False, timeout=30
        )
        # Cookies by hand: a requests jar would withhold Secure cookies over plain HTTP.
        http.cookies.clear()
        for name, value in set_cookies(res):
            if value:
                jar[name] = value
            else:
                jar.pop(name, None)
        if 300 <= res.status_code < 400:
            location = urljoin(url, res.headers["location"])
            if location.startswith(redirect_uri):
                return location, forms
            url, method, data = location, "GET", None
            continue
        if res.status_code != 200:
            raise RuntimeError(f"{url} answered {res.status_code}: {res.text[:300]}")
        action, fields = parse_form(res.text)
        if "password" in fields:
            fields["username"] = username
            fields["password"] = password
        url, method, data = urljoin(url, action or url), "POST", fields
        forms += 1
    raise RuntimeError(f"no redirect to {redirect_uri} after {MAX_STEPS} steps")


def set_cookies(res):
    for line in res.raw.headers.getlist("Set-Cookie"):
        pair = line.split(";", 1)[0]
        name, _, value = pair.partition("=")
        expired = re.search(r";\s*max-age\s*=\s*0\s*(;|$)", line, re.I)
        yield name.strip(), "" if expired else value.strip()


def parse_form(page):
    """The first POST form: its action and the fields a browser would send."""
    for attrs, inner in re.findall(r"<form\b([^>]*)>(.*?)</form>", page, re.I | re.S):
        if not re.search(r"method\s*=\s*[\"']?post", attrs, re.I):
            continue
        fields, clicked = {}, False
        for tag in re.findall(r"<(?:input|button)\b[^>]*>", inner, re.I):
            name = attr(tag, "name")
            if name is None:
                continue
            default = "submit" if tag.lower().startswith("<button") else "text"
            if (attr(tag, "type") or default).lower() == "submit":
                if clicked:
                    continue
                clicked = True
            fields[name] = attr(tag, "value") or ""
        return attr(attrs, "action"), fields
    raise RuntimeError(f"no POST form on the page: {page[:300]}")


def attr(tag, name):
    m = re.search(rf"\b{name}\s*=\s*(\"([^\"]*)\"|'([^']*)'|([^\s>]+))", tag, re.I)
    if not m:
        return None
    return html.unescape(next(g for g in m.groups()[1:] if g is not None))


def get_json(http, url):
    res = http.get(url, timeout=30)
    res.raise_for_status()
    return res.json()


def b64url(part):
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def forge(token):
    """One character of the signature changed (not the last, which may hold only padding bits)."""
    head, _, sig = token.rpartition(".")
    i = 10
    flipped = "B" if sig[i] == "A" else "A"
    return f"{head}.{sig[:i]}{flipped}{sig[i + 1:]}"


if __name__ == "__main__":
    try:
        print(json.dumps(main()))
    except Exception as e:  # noqa: BLE001
        print(f"authlib flow failed: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
