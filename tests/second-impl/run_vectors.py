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
    call = vector.get("call")
    if call is not None and call.get("amount") is not None and not verify.is_money(call["amount"]):
        return "broken vector: a call amount that is not a money value (5.7, 10.2)", None
    try:
        verified = verify.verify_chain(vector["chain"], keys, bindings, set(vector["revoked"]),
                                       set(vector.get("revoked_keys", [])), now)
        pop = vector.get("pop")
        if pop is not None:
            replay = {}
            args = (verified, keys, pop["token"], pop["htm"], pop["htu"], now, replay)
            if pop.get("seen_before", False):
                verify.verify_pop(*args)  # this first check must succeed
            verify.verify_pop(*args)
        if call is not None and not verify.permits(verified["scopes"], call):
            raise Refused("call.out_of_scope")
    except Refused as refused:
        return refused.code, None
    return "valid", {k: v for k, v in verified.items() if k not in ("leaf_key", "ath")}


def check(name, vector):
    """Returns None when the vector's `expect` (and `verified`) is met, else why not."""
    got, verified = run(vector)
    if got != vector["expect"]:
        return f"got {got}, expected {vector['expect']}"
    if got == "valid" and verified != vector["verified"]:
        return f"verified {json.dumps(verified)} != {json.dumps(vector['verified'])}"
    if name.startswith("valid-") != (got == "valid"):
        return "file name and expect disagree"
    return None


def self_check(vectors):
    """The runner must be able to fail: a broken valid vector and a wrong
    expectation are both caught, and invalid vectors fail for their own code."""
    problems = []
    valid = next(v for n, v in vectors if n.startswith("valid-"))
    tampered = copy.deepcopy(valid)
    head, payload, sig = tampered["chain"][0].split(".")
    tampered["chain"][0] = ".".join((head, payload, ("B" if sig[0] == "A" else "A") + sig[1:]))
    if run(tampered)[0] != "signature.invalid":
        problems.append("a flipped signature byte was not refused with signature.invalid")
    wrong = dict(valid, expect="chain.revoked")
    if check("valid-x", wrong) is None:
        problems.append("a wrong expectation was not reported")
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
    if not verify.is_money({"amount": "0050.50", "currency": "EUR"}) or any(
            verify.is_money(m) for m in [{"amount": "5,000", "currency": "EUR"}, {"amount": "5"},
                                         {"amount": "5", "currency": "EUR", "x": 1}]):
        problems.append("5.7: money values of a call")
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
