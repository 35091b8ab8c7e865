#!/usr/bin/env python3
"""Runs every tests/vectors/*.json file through verify.py as section 10.2 of
docs/protocol.md says, prints one line per file, and exits non-zero on any
mismatch. Then checks itself, so that it cannot pass by accepting everything."""
import copy
import hashlib
import json
import pathlib
import sys

from joserfc import jws
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import verify
from verify import Refused

VECTORS = pathlib.Path(__file__).resolve().parent.parent / "vectors"


def run(vector):
    """The outcome of one vector: ('valid', verified) or (error code, None)."""
    now, keys = vector["now"], {}
    try:
        for jwk in vector["keys"].values():
            key = verify.Key(jwk)
            keys[key.thumbprint] = key  # indexed by the computed thumbprint only
    except Refused:
        return "broken vector: a key breaks 2.6", None
    bindings = {(b["sub"], b["jkt"]) for b in vector["user_bindings"]}
    if len({jkt for _, jkt in bindings}) != len(bindings):
        return "broken vector: a key bound to two principals", None
    call, confirmation, policy = vector.get("call"), vector.get("confirmation"), vector.get("policy")
    if call is not None and call.get("amount") is not None and not verify.is_money(call["amount"]):
        return "broken vector: a call amount that is not a money value (5.7, 10.2)", None
    if policy is not None and (vector["chain"] or any(k in vector for k in ("pop", "call", "confirmation",
                                                                           "verified"))):
        return "broken vector: a policy case with a chain, a proof, a call or a verified result (10.1)", None
    try:
        body = confirmation and verify.b64d(confirmation["body"])
    except Refused:
        return "broken vector: a confirmation body that is not base64url (10.1)", None
    revoked_keys = set(vector.get("revoked_keys", []))
    try:
        if policy is not None:  # 10.2 step 8, in place of steps 4 to 7
            rule = verify.verify_policy(policy["token"], keys, bindings, revoked_keys, now)
            request, signer = verify.verify_request(policy["request"], now)
            verify.admits(rule, request, signer)
            return "valid", None
        verified = verify.verify_chain(vector["chain"], keys, bindings, set(vector["revoked"]),
                                       revoked_keys, now)
        pop = vector.get("pop")
        if pop is not None:
            replay = {}
            args = (verified, keys, pop["token"], pop["htm"], pop["htu"], now, replay)
            if pop.get("seen_before", False):
                verify.verify_pop(*args)  # this first check must succeed
            verify.verify_pop(*args)
        if call is not None and not verify.permits(verified["scopes"], call):
            raise Refused("call.out_of_scope")
        if confirmation is not None:  # 10.2 step 7
            replay = {}
            args = (verified, keys, bindings, revoked_keys, confirmation["token"], confirmation["htm"],
                    confirmation["htu"], body, now, replay)
            if confirmation.get("seen_before", False):
                verify.verify_confirmation(*args)  # this first check must succeed
            verify.verify_confirmation(*args)
        elif call is not None and verify.needs_confirmation(verified["scopes"], call):
            raise Refused("confirm.required")
    except Refused as refused:
        return refused.code, None
    return "valid", {k: v for k, v in verified.items() if k not in ("leaf_key", "ath")}


def check(name, vector):
    """Returns None when the vector's `expect` (and `verified`) is met, else why not."""
    got, verified = run(vector)
    if got != vector["expect"]:
        return f"got {got}, expected {vector['expect']}"
    if got == "valid" and verified != vector.get("verified"):  # a policy case has none (10.1)
        return f"verified {json.dumps(verified)} != {json.dumps(vector.get('verified'))}"
    if name.startswith("valid-") != (got == "valid"):
        return "file name and expect disagree"
    return None


def flip(token):
    """The token with the first character of its signature changed."""
    head, payload, sig = token.split(".")
    return ".".join((head, payload, ("B" if sig[0] == "A" else "A") + sig[1:]))


def set_in(path, change):
    """A tamper: `change` applied to the member at `path` (None: removes it)."""
    def tamper(vector):
        *parents, last = path
        target = vector
        for step in parents:
            target = target[step]
        if change is None:
            del target[last]
        else:
            target[last] = change(target[last])
    return tamper


# Each kind of valid vector, and ways to break one that must give a code.
KINDS = {
    "chain": (lambda v: "policy" not in v and "confirmation" not in v, [
        ("a flipped signature of the root", set_in(("chain", 0), flip), "signature.invalid"),
    ]),
    "confirmation": (lambda v: "confirmation" in v, [
        ("a flipped signature of the confirmation", set_in(("confirmation", "token"), flip),
         "signature.invalid"),
        ("the confirmation left out", set_in(("confirmation",), None), "confirm.required"),
        ("a byte added to the body", set_in(("confirmation", "body"),
                                            lambda b: verify.b64e(verify.b64d(b) + b" ")),
         "confirm.body_mismatch"),
    ]),
    "policy": (lambda v: "policy" in v, [
        ("a flipped signature of the policy", set_in(("policy", "token"), flip), "signature.invalid"),
        ("a flipped signature of the request", set_in(("policy", "request"), flip), "signature.invalid"),
    ]),
}


def self_check(vectors):
    """The runner must be able to fail: a broken valid vector of each kind and
    a wrong expectation are caught, and invalid vectors fail for their own code."""
    problems = []
    for kind, (is_kind, tampers) in KINDS.items():
        valid = next((v for n, v in vectors if n.startswith("valid-") and is_kind(v)), None)
        if valid is None:
            problems.append(f"no valid vector of the kind {kind}")
            continue
        for what, tamper, code in tampers:
            tampered = copy.deepcopy(valid)
            tamper(tampered)
            if run(tampered)[0] != code:
                problems.append(f"{kind}: {what} was not refused with {code}")
        if check("valid-x", dict(valid, expect="chain.revoked")) is None:
            problems.append(f"{kind}: a wrong expectation was not reported")
    codes = {v["expect"] for n, v in vectors if n.startswith("invalid-") and run(v)[0] == v["expect"]}
    if len(codes) < 10:
        problems.append(f"only {len(codes)} distinct error codes were reached")
    return problems


def refused(code, fn, *args):
    try:
        fn(*args)
    except Refused as r:
        return r.code == code
    return False


def doc_examples():
    """Facts docs/protocol.md states outright, held to this implementation."""
    problems = []
    rfc8037 = verify.Key({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})
    if rfc8037.thumbprint != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k":
        problems.append("2.6: the RFC 8037 thumbprint")
    if verify.b64d("-_8") != b"\xfb\xff" or not refused(verify.M, verify.b64d, "-_9"):
        problems.append("2.2: -_8 decodes and -_9 does not")
    identity = (1).to_bytes(32, "little")  # a small-order key, and a small-order R
    if not refused("key.invalid", verify.Key, {"kty": "OKP", "crv": "Ed25519", "x": verify.b64e(identity)}):
        problems.append("2.6: a weak key was accepted")
    # 2.7: R = the identity, S = k*a, verifies under the cofactorless equation
    # and the JOSE library takes it; strict Ed25519 refuses a small-order R.
    seed = bytes([1] + [0] * 30 + [0x4D])
    h = bytearray(hashlib.sha512(seed).digest()[:32])
    h[0], h[31] = h[0] & 248, (h[31] & 127) | 64
    signer = Ed25519PrivateKey.from_private_bytes(seed)
    key = verify.Key({"kty": "OKP", "crv": "Ed25519", "x": verify.b64e(signer.public_key().public_bytes_raw())})
    signing_input = verify.b64e(b'{"alg":"EdDSA"}') + "." + verify.b64e(b"{}")
    k = int.from_bytes(hashlib.sha512(identity + key.raw + signing_input.encode()).digest(), "little") % verify.L
    sig = identity + (k * int.from_bytes(h, "little") % verify.L).to_bytes(32, "little")
    compact = signing_input + "." + verify.b64e(sig)
    jws.deserialize_compact(compact, key.jose, algorithms=["EdDSA"])  # the library accepts it
    if not refused("signature.invalid", verify.check_signature, compact, key, "EdDSA", sig):
        problems.append("2.7: a signature with a small-order R was accepted")
    for loc in ["a/%20", "a/%41", "a/caf%C3%A9", "a/%3F", "a/a..b", "cluster-1/ns/payments*", "x://[::1]/a;v=2"]:
        if not verify.check_location(loc):
            problems.append(f"5.3: {loc} refused")
    for loc in ["a/../b", "a/..;x/b", "a/%C0%AE", "a/%E0%80%AE", "a/%ED%A0%80", "a/%80", "a/%E9/", "a/%00",
                "a/%C2%85", "a/%252e", "a/%2E", "a/%2F", "a/%5C", "a/%3B", "a/%EF%BC%8F", "a/%%32%65",
                "a/b*c", "a b", "a?b", "a/[x]", "", "a" * 2049]:
        if verify.check_location(loc):
            problems.append(f"5.3: {loc!r} accepted")
    p = "https://files.example/v1/reports/"
    if not all([verify.covers(p, p + "q3"), verify.covers(p, p + "2026/"), not verify.covers(p, p[:-1]),
                not verify.covers(p, p[:-1] + "-archive/"), verify.covers("ns/pay*", "ns/payments-eu"),
                not verify.covers("a/b", "a/b/c")]):
        problems.append("5.4: coverage")
    if verify.millionths("5000") != verify.millionths("5000.00") or verify.millionths("0.000001") != 1:
        problems.append("5.5: amounts")
    for text in ['{"a":"\\ud800"}', '{"a":"\\udc00"}', '{"a":"\\ud800\\u0041"}', '{"\\ud800":1}']:
        if not refused(verify.M, verify.parse_json, text, True):
            problems.append(f"2.5: the lone surrogate of {text} accepted")
    if verify.parse_json('{"a":"\\ud83d\\ude00"}', True) != [("a", "\U0001F600")]:
        problems.append("2.5: a surrogate pair refused")
    if not refused(verify.M, verify.integer(0, 255), verify.Num("-0")):
        problems.append("2.5: -0 read as an integer")
    problems += new_kinds()
    if not verify.is_money({"amount": "0050.50", "currency": "EUR"}) or any(
            verify.is_money(m) for m in [{"amount": "5,000", "currency": "EUR"}, {"amount": "5"},
                                         {"amount": "5", "currency": "EUR", "x": 1}]):
        problems.append("5.7: money values of a call")
    return problems


def header_only(header):
    """A token with this header, `{}` as claims and 64 zero bytes as
    signature: enough for the header checks of 3.2, which read neither."""
    return ".".join((verify.b64e(json.dumps(header).encode()), verify.b64e(b"{}"), verify.b64e(bytes(64))))


def new_kinds():
    """What docs/protocol.md states outright of requests' headers, `confirm`,
    confirmations and policies."""
    problems = []
    # 3.2 steps 9, 12 and 13: a jwk header on a request and elsewhere.
    x = "cRCJN0G2ctHV_u4vOkfBu_I9zNqrXZS1iWLfO8HmvNY"
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": x}
    kid = verify.Key(jwk).thumbprint
    request = {"alg": "EdDSA", "typ": verify.REQUEST_TYP, "kid": kid}
    try:
        if verify.parse_token(header_only(dict(request, jwk=jwk)), verify.REQUEST_TYP)[0]["jwk"].thumbprint != kid:
            problems.append("3.2: a request's jwk read as another key")
    except Refused as r:
        problems.append(f"3.2: a well-formed request header refused ({r.code})")
    other_kid = verify.b64e(bytes(32))
    for header, typ, code in [
        (request, verify.REQUEST_TYP, verify.M),  # step 12: no jwk
        (dict(request, jwk=dict(jwk, d=x)), verify.REQUEST_TYP, "key.invalid"),  # step 12: unusable
        (dict(request, jwk=dict(jwk, x=verify.b64e((1).to_bytes(32, "little")))), verify.REQUEST_TYP,
         "key.invalid"),  # a weak key
        (dict(request, jwk=[jwk]), verify.REQUEST_TYP, "key.invalid"),  # not an object
        (dict(request, jwk=jwk, kid=other_kid), verify.REQUEST_TYP, "header.kid_mismatch"),  # step 13
        (dict(request, typ="mandate-grant+jwt", jwk=jwk), "mandate-grant+jwt", "header.untrusted_key"),
        (dict(request, typ="mandate-policy+jwt", jwk=jwk), "mandate-policy+jwt", "header.untrusted_key"),
    ]:
        if not refused(code, verify.parse_token, header_only(header), typ):
            problems.append(f"3.2: {json.dumps(header)} not refused with {code}")
    # 4.1: the binding code.
    if not verify.BINDING_CODE.fullmatch("7K3Q-M9XD") or any(
            verify.BINDING_CODE.fullmatch(c) for c in ["7K3Q-M9XU", "7k3q-m9xd", "7K3QM9XD", "7K3Q-M9XD0"]):
        problems.append("4.1: binding codes")
    # 4.13: the body of the example and its bdh.
    body = b'{"sku":"SSD-2TB","quantity":4,"amount":"480.00","currency":"EUR"}'
    if verify.b64e(hashlib.sha256(body).digest()) != "fyD-J9yhGE5XkGPt3qFA_o6qS5DIQMQ6GE3e59MF-ZE":
        problems.append("4.13: the bdh of the example body")
    # 6.8: the same request.
    u = "https://erp.example/vendors/acme/orders"
    if not verify.same_request(u + "?a=1", "HTTPS://ERP.example/vendors/acme/orders?a=1") or any(
            verify.same_request(a, b) for a, b in [(u + "?a=1", u + "?a=01"), (u + "?a=1", u + "?"),
                                                   (u + "?", u), (u + "?a=1", u), (u + "#f", u + "#f"),
                                                   (u + "/", u)]):
        problems.append("6.8: the same request")
    # 5.6 step 3: confirm attenuates; 5.8: which calls need a confirmation.
    eur = lambda a: {"amount": a, "currency": "EUR"}  # noqa: E731
    for child, parent, want in [
            (None, None, None), ({}, None, None), (None, {}, "limit"), ({}, {}, None),
            ({}, {"above": eur("100")}, None), ({"above": eur("1")}, {}, "limit"),
            ({"above": eur("50")}, {"above": eur("100.00")}, None),
            ({"above": eur("100")}, {"above": eur("100.00")}, None),
            ({"above": eur("200")}, {"above": eur("100")}, "limit"),
            ({"above": {"amount": "50", "currency": "USD"}}, {"above": eur("100")}, "currency")]:
        if verify.confirm_within(child, parent) != want:
            problems.append(f"5.6: confirm {child} under {parent} is not {want}")
    detail = lambda confirm: {"type": "t", "actions": ["a"], "locations": ["x/"],  # noqa: E731
                              "limits": {} if confirm is None else {"confirm": confirm}}
    call = lambda amount: {"type": "t", "action": "a", "location": "x/y",  # noqa: E731
                           **({} if amount is None else {"amount": amount})}
    for details, amount, want in [
            ([detail({})], eur("1"), True), ([detail(None)], None, False),
            ([detail({"above": eur("500")})], eur("480.00"), False),
            ([detail({"above": eur("500")})], eur("500.000001"), True),
            ([detail({"above": eur("500")})], None, True),
            ([detail({"above": eur("500")})], {"amount": "1", "currency": "USD"}, True),
            ([detail({}), detail(None)], eur("1"), False),
            ([detail({}), dict(detail(None), actions=["b"])], eur("1"), True)]:
        if verify.needs_confirmation(details, call(amount)) != want:
            problems.append(f"5.8: {details} with {amount} does not need: {not want}")
    return problems


def main():
    files = sorted(VECTORS.glob("*.json"))
    vectors = [(f.stem, json.loads(f.read_text())) for f in files]
    passed = failed = 0
    for name, vector in vectors:
        why = check(name, vector)
        if why is None:
            passed += 1
            print(f"ok - {name}: {vector['expect']}")
        else:
            failed += 1
            print(f"not ok - {name}: {why}")
    problems = self_check(vectors) + doc_examples()
    if passed + failed != len(files) or not files:
        problems.append(f"ran {passed + failed} vectors of {len(files)} files")
    for problem in problems:
        print(f"not ok - self-check: {problem}")
    failed += len(problems)
    # The lines scripts/test-summary.py counts, as for node --test.
    print(f"# second-impl: {passed} of {len(files)} vectors ({sum(n.startswith('valid-') for n, _ in vectors)}"
          f" valid) gave the expected outcome")
    print(f"# pass {passed}")
    print(f"# fail {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
