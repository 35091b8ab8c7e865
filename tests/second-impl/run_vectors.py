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
    witness = vector.get("witness")
    if witness is not None and (not vector["chain"] or any(k in vector for k in ("pop", "call", "confirmation",
                                                                                  "policy"))):
        return "broken vector: a witness case without a chain, or with a proof, a call or a policy (10.1)", None
    if witness is not None and not (isinstance(witness.get("key"), str) and witness["key"] in keys):
        return "broken vector: a witness key that is not in keys (10.1)", None
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
        if witness is not None:  # 10.2 step 4, against the chain's last grant as G
            verify.verify_witness(witness["token"], keys[witness["key"]], verify.token_id(vector["chain"][-1]),
                                  verified["scopes"], now)
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


def claims_of(part):
    return json.loads(verify.b64d(part))


def reencoded(part):
    """A payload part re-encoded with a changed claim (`jti`), left unsigned."""
    claims = claims_of(part)
    claims["jti"] += "-changed"
    return verify.b64e(json.dumps(claims, separators=(",", ":")).encode())


def in_payload(change):
    """A compact token with `change` applied to its payload part."""
    def tamper(token):
        head, payload, sig = token.split(".")
        return ".".join((head, change(payload), sig))
    return tamper


def in_part(i, change):
    """A receipt of a report, REPORT~INDEX~PATH~PAYLOAD, with `change`
    applied to part `i` (`change` also gets the report's claims)."""
    def tamper(text):
        parts = text.split("~")
        parts[i] = change(parts[i], claims_of(parts[0].split(".")[1]))
        return "~".join(parts)
    return set_in(("witness", "token"), tamper)


def other_key(vector):
    """The witness key swapped for another key of the file."""
    others = sorted(verify.Key(jwk).thumbprint for jwk in vector["keys"].values())
    vector["witness"]["key"] = next(t for t in others if t != vector["witness"]["key"])


def is_report(v):
    return "witness" in v and "~" in v["witness"]["token"]


# Each kind of valid vector, and ways to break one that must give a code.
KINDS = {
    "chain": (lambda v: not any(k in v for k in ("policy", "confirmation", "witness")), [
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
    "witness receipt signed on its own": (lambda v: "witness" in v and not is_report(v), [
        ("a flipped signature", set_in(("witness", "token"), flip), "signature.invalid"),
        ("the payload re-encoded with a changed claim", set_in(("witness", "token"), in_payload(reencoded)),
         "signature.invalid"),
        ("another key of the file as the witness key", other_key, "header.kid_mismatch"),
    ]),
    # A report of two receipts or more, so that the index can move to another leaf.
    "witness receipt in a report": (lambda v: is_report(v) and v["witness"]["token"].split("~")[2] != "", [
        ("a flipped signature of the report", in_part(0, lambda r, _: flip(r)), "signature.invalid"),
        ("the index moved to another leaf", in_part(1, lambda i, r: str((int(i) + 1) % r["size"])),
         "signature.invalid"),
        ("a hash dropped from the path", in_part(2, lambda p, _: ".".join(p.split(".")[1:])), "signature.invalid"),
        ("a hash added to the path", in_part(2, lambda p, _: p + "." + p.split(".")[0]), "signature.invalid"),
        ("the payload re-encoded with a changed claim", in_part(3, lambda p, _: reencoded(p)),
         "signature.invalid"),
        ("the index equal to the size", in_part(1, lambda i, r: str(r["size"])), "token.malformed"),
        ("the index with a leading zero", in_part(1, lambda i, _: "0" + i), "token.malformed"),
        ("the path cut in the middle of a hash", in_part(2, lambda p, _: p[:-1]), "token.malformed"),
        ("another key of the file as the witness key", other_key, "header.kid_mismatch"),
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
    # 4.10: the example's dig, and the grammars of trace and INDEX.
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_command",' \
           b'"arguments":{"command":"make test"}}}'
    if len(body) != 114 or verify.b64e(hashlib.sha256(body).digest()) != "cavR7gcZDCAqkHrnbnjBqM-1LBP2sOEuOqIauoUzoDg":
        problems.append("4.10: the dig of the example body")
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    if not verify.TRACE.fullmatch(trace) or verify.TRACE.fullmatch(trace.upper()):
        problems.append("4.10: the trace grammar")
    if not all(verify.INDEX.fullmatch(i) for i in ["0", "1", "9", "10", "99"]) or any(
            verify.INDEX.fullmatch(i) for i in ["", "00", "01", "100", "-1", "+1", " 1", "1 ", "1e1", "\u0661"]):
        problems.append("4.10: the INDEX grammar")
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


# -- 4.10: the Merkle tree of a report, and witness receipts this runner signs ------------

def mth(leaves):
    """RFC 9162 2.1.1: the head of the tree of these leaf inputs (n >= 1)."""
    if len(leaves) == 1:
        return verify.leaf_hash(leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)  # the largest power of two below n
    return verify.node_hash(mth(leaves[:k]), mth(leaves[k:]))


def audit_path(m, leaves):
    """RFC 9162 2.1.3.1: PATH(m, D[n]), nearest sibling first."""
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return audit_path(m, leaves[:k]) + [mth(leaves[k:])]
    return audit_path(m - k, leaves[k:]) + [mth(leaves[:k])]


# RFC 6962's reference tree heads (its test data, as in certificate-transparency):
# the head of the first n of these 8 leaves, for n = 1 to 8.
RFC6962_LEAVES = [bytes.fromhex(h) for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                             "606162636465666768696a6b6c6d6e6f"]]
RFC6962_HEADS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def merkle_checks():
    """This tree against RFC 6962's heads, and `verify.proves` against it: every
    leaf of trees of 1 to 100 leaves proves with its path, and not moved to
    another index, nor with a hash dropped or added."""
    problems = []
    for n, head in enumerate(RFC6962_HEADS, 1):
        if mth(RFC6962_LEAVES[:n]).hex() != head:
            problems.append(f"RFC 6962: the head of the first {n} test leaves")
    for n in range(1, 101):
        leaves = [b"leaf %d of %d" % (m, n) for m in range(n)]
        root, bad = mth(leaves), []
        for m in range(n):
            leaf, path = verify.leaf_hash(leaves[m]), audit_path(m, leaves)
            if not verify.proves(leaf, m, n, path, root):
                bad.append(f"leaf {m} does not prove")
            if any(verify.proves(leaf, i, n, path, root) for i in range(n) if i != m):
                bad.append(f"leaf {m} proves at another index")
            if verify.proves(leaf, m, n, path + [path[0] if path else root], root) \
                    or (path and verify.proves(leaf, m, n, path[:-1], root)):
                bad.append(f"leaf {m} proves with a path of the wrong length")
            if verify.proves(verify.leaf_hash(leaves[m] + b"!"), m, n, path, root):
                bad.append(f"another leaf {m} proves")
        if bad:
            problems.append(f"RFC 9162 2.1.3.2, a tree of {n}: {bad[0]}")
    # 4.10: a leaf's path can fold to the same head in a larger tree, which is
    # why the size is signed: the path of leaf 2 of five (three hashes) folds
    # to the head of five under a size of 6, 7 or 8 too, not of 3 or 4. (The
    # path of leaf 2 of six has the same length, but its last hash differs:
    # see README, item 25.)
    five = [b"leaf %d" % m for m in range(5)]
    path, root = audit_path(2, five), mth(five)
    if audit_path(2, five + [b"leaf 5"]) != path[:-1] + [mth(five[4:] + [b"leaf 5"])] \
            or [verify.proves(verify.leaf_hash(five[2]), 2, n, path, root) for n in range(3, 10)] != \
            [False, False, True, True, True, True, False]:
        problems.append("4.10: leaf 2 of five does not fold as a leaf of six, seven and eight")
    return problems


def signer(n):
    """An Ed25519 key of the runner's own, its JWK and thumbprint."""
    private = Ed25519PrivateKey.from_private_bytes(bytes([n] * 31 + [0x4D]))
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": verify.b64e(private.public_key().public_bytes_raw())}
    return private, jwk, verify.Key(jwk).thumbprint


def sign(private, kid, typ, claims, header=None):
    head = verify.b64e(json.dumps(dict({"alg": "EdDSA", "typ": typ, "kid": kid}, **(header or {}))).encode())
    signing_input = head + "." + verify.b64e(json.dumps(claims, separators=(",", ":")).encode())
    return signing_input + "." + verify.b64e(private.sign(signing_input.encode()))


def own_witness(vectors):
    """Witness receipts this runner signs itself, with its own witness key, for
    the first valid plain chain: both forms valid, then one rule of 4.10
    broken at a time (the steps, and the order of the own rules)."""
    chain = next((v for n, v in vectors if n.startswith("valid-") and KINDS["chain"][0](v)), None)
    if chain is None:
        return ["4.10: no valid chain vector to witness"]
    private, jwk, kid = signer(0x57)
    other, other_jwk, other_kid = signer(0x58)
    now, leaf = chain["now"], verify.verify_chain(
        chain["chain"], {verify.Key(k).thumbprint: verify.Key(k) for k in chain["keys"].values()},
        {(b["sub"], b["jkt"]) for b in chain["user_bindings"]}, set(chain["revoked"]),
        set(chain.get("revoked_keys", [])), chain["now"])
    target = leaf["scopes"][0]["locations"][0]  # a location covers itself (5.4)
    base = {"grant": verify.token_id(chain["chain"][-1]), "holder": leaf["leaf_key"],
            "action": {"type": "tools/call", "target": target, "summary": "Called the tool run_command"},
            "name": "run_command", "dig": verify.b64e(hashlib.sha256(b"{}").digest()), "outcome": "succeeded",
            "trace": "4bf92f3577b34da6a3ce929d0e0e4736", "iat": now, "jti": "w-1"}

    def outcome(text, key=kid):
        v = {k: copy.deepcopy(x) for k, x in chain.items() if k not in ("pop", "call")}
        v["witness"] = {"token": text, "key": key}
        v["keys"]["second-impl witness"], v["keys"]["second-impl other"] = jwk, other_jwk
        return run(v)[0]

    def receipt(**change):
        return dict(base, **change)

    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    bad_dig = base["dig"][:-1] + alphabet[alphabet.index(base["dig"][-1]) | 1]  # non-zero trailing bits
    cases = [  # (what, claims, code), each signed on its own and put in a report
        ("a receipt", base, "valid"),
        ("a receipt without name and trace", {k: v for k, v in base.items() if k not in ("name", "trace")},
         "valid"),
        ("a receipt with name and trace null", receipt(name=None, trace=None), "valid"),
        ("a receipt at now + skew", receipt(iat=now + 60), "valid"),
        ("a receipt of a call outside the grant's type and action", receipt(
            action=dict(base["action"], type="x/y"), outcome="refused"), "valid"),
        ("a receipt after now + skew", receipt(iat=now + 61), "time.not_yet_valid"),
        ("a future receipt with a bad dig", receipt(iat=now + 61, dig="x"), "time.not_yet_valid"),
        ("another grant", receipt(grant=verify.b64e(bytes(32))), "token.malformed"),
        ("a target no location covers", receipt(action=dict(base["action"], target="zz-second-impl://nowhere")),
         "call.out_of_scope"),
        ("a dig of 42 characters", receipt(dig=base["dig"][:-1]), "token.malformed"),
        ("a dig with non-zero trailing bits", receipt(dig=bad_dig), "token.malformed"),
        ("a trace of zeros", receipt(trace="0" * 32), "token.malformed"),
        ("an uppercase trace", receipt(trace=base["trace"].upper()), "token.malformed"),
        ("an empty name", receipt(name=""), "token.malformed"),
        ("a name of 2049 bytes", receipt(name="n" * 2049), "token.malformed"),
        ("a name of 2048 bytes", receipt(name="n" * 2048), "valid"),
        ("a name with a control character", receipt(name="run\u0085"), "token.malformed"),
        ("another outcome", receipt(outcome="ok"), "token.malformed"),
        ("an unknown member", receipt(x=1), "token.malformed"),
        ("an unknown member of action", receipt(action=dict(base["action"], x="y")), "token.malformed"),
        ("a holder that is not a thumbprint", receipt(holder="x"), "token.malformed"),
        ("no dig", {k: v for k, v in base.items() if k != "dig"}, "token.malformed"),
    ]
    problems = []
    for what, claims, code in cases:
        got = outcome(sign(private, kid, verify.WITNESS_TYP, claims))
        if got != code:
            problems.append(f"4.10: {what}, signed on its own, gave {got}, not {code}")
    for what, text, code in [
        ("an agent's receipt", sign(private, kid, "mandate-receipt+jwt", base), "header.wrong_typ"),
        ("a report", sign(private, kid, verify.REPORT_TYP, base), "header.wrong_typ"),
        ("a receipt with a jwk header", sign(private, kid, verify.WITNESS_TYP, base, {"jwk": jwk}),
         "header.untrusted_key"),
        ("a receipt signed by another key", sign(other, other_kid, verify.WITNESS_TYP, base), "header.kid_mismatch"),
        ("a receipt signed by another key under the witness's kid", sign(other, kid, verify.WITNESS_TYP, base),
         "signature.invalid"),
    ]:
        got = outcome(text)
        if got != code:
            problems.append(f"4.10: {what} gave {got}, not {code}")
    if outcome(sign(private, kid, verify.WITNESS_TYP, base), other_kid) != "header.kid_mismatch":
        problems.append("4.10: a receipt checked under another witness key was not header.kid_mismatch")

    # In a report: every leaf of reports of 1 to 9 receipts, and each case at
    # the first and last leaves of some.
    def report(payloads, **change):
        return sign(private, kid, verify.REPORT_TYP,
                    dict({"root": verify.b64e(mth([p.encode() for p in payloads])), "size": len(payloads),
                          "iat": now, "jti": "report-1"}, **change))

    def in_report(payloads, m, text=None, path=None, index=None):
        path = audit_path(m, [p.encode() for p in payloads]) if path is None else path
        return "~".join((text or report(payloads), str(m if index is None else index),
                         ".".join(map(verify.b64e, path)), payloads[m]))

    encode = lambda c: verify.b64e(json.dumps(c, separators=(",", ":")).encode())  # noqa: E731
    for n in range(1, 10):
        for m in range(n):
            for what, claims, code in cases if n in (1, 5, 9) and m in (0, n // 2, n - 1) else cases[:1]:
                payloads = [encode(receipt(jti=f"w-{i}")) for i in range(n)]
                payloads[m] = encode(claims)
                got = outcome(in_report(payloads, m))
                if got != code:
                    problems.append(f"4.10: {what}, leaf {m} of a report of {n}, gave {got}, not {code}")
    five = [encode(receipt(jti=f"w-{i}")) for i in range(5)]
    path = audit_path(2, [p.encode() for p in five])
    for what, text, code in [
        ("a report at now + skew", in_report(five, 2, report(five, iat=now + 60)), "valid"),
        ("a report after now + skew", in_report(five, 2, report(five, iat=now + 61)), "time.not_yet_valid"),
        ("a future report of 101", in_report(five, 2, report(five, iat=now + 61, size=101)), "time.not_yet_valid"),
        ("a report of 0", in_report(five, 2, report(five, size=0)), "token.malformed"),
        ("a report of 101", in_report(five, 2, report(five, size=101)), "token.malformed"),
        ("a report with a size of 2.0", in_report(five, 2, report(five, size=2.0)), "token.malformed"),
        ("a report of 4 over a tree of 5", in_report(five, 2, report(five, size=4)), "signature.invalid"),
        ("a report with a bad root", in_report(five, 2, report(five, root="x")), "token.malformed"),
        ("a report with an unknown member", in_report(five, 2, report(five, x=1)), "token.malformed"),
        ("a report without jti", in_report(five, 2, sign(private, kid, verify.REPORT_TYP, {
            "root": verify.b64e(mth([p.encode() for p in five])), "size": 5, "iat": now})), "token.malformed"),
        ("a report signed by another key", in_report(five, 2, sign(other, other_kid, verify.REPORT_TYP, {
            "root": verify.b64e(mth([p.encode() for p in five])), "size": 5, "iat": now, "jti": "r"})),
         "header.kid_mismatch"),
        ("a receipt signed on its own as the report", in_report(five, 2, sign(private, kid, verify.WITNESS_TYP,
                                                                                base)), "header.wrong_typ"),
        ("the index at the size", in_report(five, 2, index=5), "token.malformed"),
        ("the index 100", in_report(five, 2, index=100), "token.malformed"),
        ("a path of the wrong length", in_report(five, 2, path=path[:-1]), "signature.invalid"),
        ("an empty path", in_report(five, 2, path=[]), "signature.invalid"),
        ("a path that is not base64url", in_report(five, 2).replace("~" + verify.b64e(path[0]), "~" + "+" * 43),
         "token.malformed"),
        ("a path with an empty hash", in_report(five, 2).replace("~" + verify.b64e(path[0]) + ".", "~."),
         "token.malformed"),
        ("three parts", in_report(five, 2).rsplit("~", 1)[0], "token.malformed"),
        ("five parts", in_report(five, 2) + "~", "token.malformed"),
        ("a report over a payload that is not base64url", in_report(five[:2] + ["!" + five[2]] + five[3:], 2),
         "token.malformed"),
        ("a report over a payload that is not claims JSON", in_report(five[:2] + [verify.b64e(b"[]")] + five[3:], 2),
         "token.malformed"),
        ("a report over a payload with a repeated claim", in_report(five[:2] + [verify.b64e(
            b'{"jti":"a","jti":"b"}')] + five[3:], 2), "token.duplicate_key"),
        ("a receipt of a report longer than 16384 bytes", in_report(
            five[:2] + [encode(receipt(jti="w" * 128, name="n" * 2048,
                                       action=dict(base["action"], summary="s" * 14000)))] + five[3:], 2),
         "token.too_large"),
    ]:
        got = outcome(text)
        if got != code:
            problems.append(f"4.10: {what} gave {got}, not {code}")
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
    problems = self_check(vectors) + doc_examples() + merkle_checks() + own_witness(vectors)
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
