#!/usr/bin/env python3
"""Checks a sluice gate pass with PyJWT and its JWKS client (an implementation that
is not sluice's), the way an origin site verifies passes offline.

    check-pass.py JWKS_URL ISSUER AUDIENCE PASS

Prints one JSON object: `valid` (PyJWT accepted the pass), `kid`, `claims`,
`rejected` (each attack PyJWT must refuse -> true if it did) and `forged` (the attack
tokens, for the caller to send to sluice's /verify as well). Attacks: wrong
audience, expired (PyJWT's clock moved past `exp` with a negative leeway), tampered
claims, a signature by another Ed25519 key under the same kid, `alg: none`, and
HS256 keyed with the published public key. Needs `pip install 'pyjwt[crypto]'`.
"""
import base64
import hashlib
import hmac
import json
import sys
import urllib.request

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

jwks_url, issuer, audience, token = sys.argv[1:5]


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64d(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


client = jwt.PyJWKClient(jwks_url, cache_keys=False)


def accepted(tok, aud=audience, leeway=0):
    # A negative leeway moves PyJWT's clock forward (for `exp`); `iat` is then
    # checked only without one, so the expiry case fails on `exp` alone.
    options = {"require": ["exp", "iat", "sub", "jti"], "verify_iat": leeway == 0}
    try:
        key = client.get_signing_key_from_jwt(tok).key
        jwt.decode(tok, key, algorithms=["EdDSA"], audience=aud, issuer=issuer,
                   leeway=leeway, options=options)
        return True
    except (jwt.PyJWTError, ValueError, KeyError):
        return False


header_b64, claims_b64, sig_b64 = token.split(".")
header = json.loads(b64d(header_b64))
claims = json.loads(b64d(claims_b64))
valid = accepted(token)

tampered_claims = dict(claims, sub=claims["sub"] + "-x")
tampered = f"{header_b64}.{b64(json.dumps(tampered_claims).encode())}.{sig_b64}"

other_key = Ed25519PrivateKey.generate()
signing_input = f"{header_b64}.{claims_b64}".encode()
wrong_key = f"{header_b64}.{claims_b64}.{b64(other_key.sign(signing_input))}"

none_header = b64(json.dumps({"alg": "none", "kid": header["kid"], "typ": "JWT"}).encode())
alg_none = f"{none_header}.{claims_b64}."

# HS256 keyed with the public key as published (the classic algorithm confusion).
with urllib.request.urlopen(jwks_url) as r:
    public_x = next(k["x"] for k in json.load(r)["keys"] if k["kid"] == header["kid"])
hs_header = b64(json.dumps({"alg": "HS256", "kid": header["kid"], "typ": "JWT"}).encode())
hs_input = f"{hs_header}.{claims_b64}".encode()
hs256 = f"{hs_header}.{claims_b64}.{b64(hmac.new(public_x.encode(), hs_input, hashlib.sha256).digest())}"

forged = {"tampered": tampered, "wrong_key": wrong_key, "alg_none": alg_none, "hs256": hs256}
rejected = {name: not accepted(tok) for name, tok in forged.items()}
rejected["wrong_audience"] = not accepted(token, aud=audience + "-other")
rejected["expired"] = not accepted(token, leeway=-(claims["exp"] - claims["iat"] + 5))

print(json.dumps({"valid": valid, "kid": header["kid"], "claims": claims,
                  "rejected": rejected, "forged": forged}))
