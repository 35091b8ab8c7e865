"""Mandate's verification rules, written from docs/protocol.md alone.

Chains of grants (6.2), proofs of possession (6.5), the call check (5.7),
whether a call needs a confirmation (5.8) and its confirmation (4.13, 6.8),
requests (4.1), policies with the matching of a request (4.12), and witness
receipts in both forms, signed on their own or in a report (4.10, with the
RFC 9162 inclusion proof).
Signatures go through joserfc (RFC 7515/8037/9864); the strict-Ed25519
extras of 2.6 and 2.7 that a JOSE library does not make are checked here.
Every rule is an allow-list: a grammar, a schema or a set of names.
"""
import base64
import hashlib
import re
import sys
import unicodedata
import warnings
from json.decoder import scanstring

from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import OKPKey

warnings.filterwarnings("ignore", category=SecurityWarning)  # "EdDSA is deprecated"

MAX_TOKEN_BYTES, MAX_LINKS, SKEW, POP_MAX_AGE = 16384, 16, 60, 60
MAX_DEPTH = 127  # 2.5: objects and arrays nest at most 127 deep in the claims
# The header has no depth limit (3.1), only its size (2.3): at most 12288
# bytes, so at most 6144 levels, one Python frame each.
sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
M, S = "token.malformed", "scope.malformed"
AGENT_PREFIX = "urn:ietf:params:oauth:jwk-thumbprint:sha-256:"


class Refused(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


# -- 2.2 base64url, strict ---------------------------------------------------

B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64e(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64d(text, code=M, size=None):
    """Decodes strictly; `code` on failure, and when not exactly `size` bytes."""
    if not isinstance(text, str) or not B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise Refused(code)
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64e(raw) != text or (size is not None and len(raw) != size):
        raise Refused(code)  # non-canonical trailing bits, or the wrong length
    return raw


def token_id(compact):
    return b64e(hashlib.sha256(compact.encode()).digest())


# -- 2.5 JSON: one ordered tree, and the strictness pass in document order ------

class Obj(list):
    """A JSON object: its (name, value) members in document order, and the
    raw text of each value in `raw`."""

    def __init__(self):
        super().__init__()
        self.raw = []


class Num:
    """A JSON number: its literal text."""

    def __init__(self, text):
        self.text = text


ARRAY_MEMBERS = {"authorization_details", "actions", "locations", "revokes", "parent_chain", "keys", "tools"}
NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
WS = re.compile(r"[ \t\n\r]*")
LITERALS = {"true": True, "false": False, "null": None}


def well_formed(s):
    """No lone surrogate: from a \\u escape, or a byte that was not UTF-8."""
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in s)


def parse_json(text, strict):
    """Parses one JSON object followed only by whitespace. With `strict`, this is
    the strictness pass of 2.5: the first violation in document order decides.
    Without it (the header, 3.1), only well-formedness is checked."""
    skip = lambda i: WS.match(text, i).end()  # noqa: E731

    def value(i, name, in_array, depth=1):
        i = skip(i)
        c = text[i : i + 1]
        if c == '"':
            return string(i)
        if c in ("{", "["):
            if strict and depth > MAX_DEPTH:
                raise Refused(M)  # noticed at the opening bracket: nothing inside is read
            is_obj, close = c == "{", "}" if c == "{" else "]"
            if strict and not is_obj and (in_array or name not in ARRAY_MEMBERS):
                raise Refused(M)  # an array where Mandate defines none
            out, seen, i = Obj() if is_obj else [], set(), skip(i + 1)
            if text[i : i + 1] == close:
                return out, i + 1
            while True:
                if is_obj:
                    key, i = string(skip(i))
                    if strict and key in seen:
                        raise Refused("token.duplicate_key")
                    seen.add(key)
                    i = skip(i)
                    if text[i : i + 1] != ":":
                        raise Refused(M)
                    start = skip(i + 1)
                    item, i = value(start, key, False, depth + 1)
                    out.append((key, item))
                    out.raw.append(text[start:i])
                else:
                    item, i = value(i, None, True, depth + 1)
                    out.append(item)
                i = skip(i)
                if text[i : i + 1] == close:
                    return out, i + 1
                if text[i : i + 1] != ",":
                    raise Refused(M)
                i += 1
        m = NUMBER.match(text, i)
        if m and m.end() > i:
            return Num(m.group()), m.end()
        for word, val in LITERALS.items():
            if text.startswith(word, i):
                return val, i + len(word)
        raise Refused(M)

    def string(i):
        if text[i : i + 1] != '"':
            raise Refused(M)
        try:
            s, end = scanstring(text, i + 1, True)  # no raw control characters
        except ValueError:
            raise Refused(M) from None
        if strict and not well_formed(s):
            raise Refused(M)
        return s, end

    tree, end = value(0, None, False)
    if not isinstance(tree, Obj) or WS.match(text, end).end() != len(text):
        raise Refused(M)
    return tree


# -- 2.5 the typed read: schemas of allowed members ---------------------------

def is_cc(ch):
    return ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F


def string(v):
    if not isinstance(v, str):
        raise Refused(M)
    return v


def bounded_text(lo, hi, code):
    def rule(v):
        s = string(v)
        if not lo <= len(s.encode()) <= hi or any(map(is_cc, s)):
            raise Refused(code)
        return s
    return rule


def integer(lo, hi):
    def rule(v):
        # No fraction, exponent or "-0" (which JSON parsers read as a float).
        if not isinstance(v, Num) or not re.fullmatch(r"0|-?[1-9][0-9]*", v.text) or not lo <= int(v.text) <= hi:
            raise Refused(M)
        return int(v.text)
    return rule


def b64_32(v):
    """A thumbprint or a token id: base64url of exactly 32 bytes."""
    b64d(string(v), M, 32)
    return v


def agent_id(v):
    s = string(v)
    if not s.startswith(AGENT_PREFIX):
        raise Refused(M)
    b64_32(s[len(AGENT_PREFIX) :])
    return s


def array_of(rule, nonempty_code=None):
    def read(v):
        if not isinstance(v, list):
            raise Refused(M)
        out = [rule(x) for x in v]
        if nonempty_code and not out:
            raise Refused(nonempty_code)
        return out
    return read


NOT_NULL = "optional, but null refused"  # 2.5: `parent_chain` alone


def obj(schema):
    """Reads an object: members in document order, unknown ones refused,
    `null` read as absent when optional (`True`: required, `False`: optional,
    `NOT_NULL`: optional with `null` refused), a missing one noticed at the end."""
    def read(v):
        if not isinstance(v, Obj):
            raise Refused(M)
        out = {}
        for name, item in v:
            if name not in schema:
                raise Refused(M)
            rule, required = schema[name]
            if item is None and required is False:
                continue
            if item is None:
                raise Refused(M)
            out[name] = rule(item)
        if any(req is True and name not in out for name, (_, req) in schema.items()):
            raise Refused(M)
        return out
    return read


def one_of(*names):
    """A string that is one of `names` (an enumeration), else token.malformed."""
    def rule(v):
        if string(v) not in names:
            raise Refused(M)
        return v
    return rule


def matching(test, code):
    """A string rule: `test` (a regex or a function) must hold, else `code`."""
    def rule(v):
        s = string(v)
        if not (test.fullmatch(s) if isinstance(test, re.Pattern) else test(s)):
            raise Refused(code)
        return s
    return rule


AMOUNT, CURRENCY = re.compile(r"[0-9]{1,18}(\.[0-9]{1,6})?"), re.compile("[A-Z]{3}")
TIME, JTI = integer(I64_MIN, I64_MAX), bounded_text(1, 128, M)
MONEY = obj({"amount": (matching(AMOUNT, S), True), "currency": (matching(CURRENCY, S), True)})
DETAIL_MEMBERS = obj({
    # Where the value stands (5.1 step 1): types, locations, amounts, currencies.
    "type": (string, True),
    "actions": (array_of(string), True),
    "locations": (array_of(matching(lambda loc: check_location(loc), S)), True),
    "identifier": (string, False),
    "limits": (obj({
        "max_calls": (integer(0, 2**64 - 1), False),
        "max_amount": (MONEY, False),
        # 5.1: {} confirms every call; {"above": money} those above it.
        "confirm": (obj({"above": (MONEY, False)}), False),
    }), False),
})


def is_name(s):
    """5.2: 1 to 256 bytes, no control character."""
    return 1 <= len(s.encode()) <= 256 and not any(map(is_cc, s))


def DETAIL(v):
    """5.1: a detail. When it ends (step 2): a missing member (in `obj`), then
    the names of 5.2 and an empty `actions` or `locations`."""
    d = DETAIL_MEMBERS(v)
    names = [d["type"], *d["actions"], *([d["identifier"]] if "identifier" in d else [])]
    if not all(map(is_name, names)) or not d["actions"] or not d["locations"]:
        raise Refused(S)
    return d


def is_money(v):
    """5.7: a call's amount is a money value of 5.1: exactly `amount` and `currency`."""
    return isinstance(v, dict) and set(v) == {"amount", "currency"} \
        and all(isinstance(v[k], str) for k in v) \
        and AMOUNT.fullmatch(v["amount"]) is not None and CURRENCY.fullmatch(v["currency"]) is not None
PRINCIPAL = bounded_text(1, 512, M)
GRANT = obj({
    "sub": (PRINCIPAL, True),
    "act": (obj({"sub": (agent_id, True)}), True),
    "cnf": (obj({"jkt": (b64_32, True)}), True),
    "authorization_details": (array_of(DETAIL), True),
    "purpose": (string, True),
    "intent": (string, False),
    "iat": (TIME, True), "nbf": (TIME, True), "exp": (TIME, True),
    "jti": (JTI, True),
    "max_depth": (integer(0, 255), True),
    "prf": (b64_32, False),
    "req": (b64_32, False),
})
POP = obj({"htm": (string, True), "htu": (string, True), "iat": (TIME, True),
           "jti": (JTI, True), "ath": (string, True)})
BINDING_CODE = re.compile("[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}")  # Crockford base32
REQUEST = obj({  # 4.1
    # The typed read leaves principal_hint a plain string: only a broker
    # holds it to the principal grammar (docs/protocol.md is unclear; see README).
    "principal_hint": (string, False),
    "agent": (obj({"name": (string, True), "publisher": (string, False), "version": (string, False)}), True),
    "authorization_details": (array_of(DETAIL), True),
    "purpose": (string, True),
    "intent": (string, False),
    # The table's 1 to 2592000 and 0 to 15 are Claims::check's (token.malformed,
    # chain.too_long); the typed read holds the types, u32 and u8 (see README).
    "lifetime": (integer(0, 2**32 - 1), True),
    "max_depth": (integer(0, 255), True),
    "parent_chain": (array_of(b64_32), NOT_NULL),
    "binding_code": (matching(BINDING_CODE, M), True),
    "jti": (JTI, True),
    "iat": (TIME, True), "exp": (TIME, True),
    "oauth_client": (obj({
        "client_id": (string, True),
        "verified_by": (one_of("metadata_document", "registration"), True),
        "redirect_uri": (string, True),
        "resource": (string, True),
    }), False),
})
POLICY = obj({  # 4.12; which bounds an effect needs is an own rule
    "sub": (PRINCIPAL, True),
    "effect": (one_of("approve", "deny"), True),
    "agent": (obj({"jkt": (b64_32, True)}), True),
    "authorization_details": (array_of(DETAIL), False),
    "max_lifetime": (integer(0, 2**32 - 1), False),
    "max_depth": (integer(0, 255), False),
    "label": (string, False),  # its grammar is an own rule too
    "iat": (TIME, True), "exp": (TIME, True),
    "jti": (JTI, True),
})
CONFIRMATION = obj({  # 4.13; ath, htm, htu and bdh are compared as strings (6.8)
    "sub": (PRINCIPAL, True),
    "cnf": (obj({"jkt": (b64_32, True)}), True),
    "ath": (string, True), "htm": (string, True), "htu": (string, True), "bdh": (string, True),
    "iat": (TIME, True), "exp": (TIME, True),
    "jti": (JTI, True),
})
WITNESS = obj({  # 4.10; dig, trace and name are held to their grammars by the own rules
    # (`witness_rules`), the rest here: `outcome` too, which no own rule names (README, item 20).
    "grant": (b64_32, True),
    "holder": (b64_32, True),
    "action": (obj({"type": (string, True), "target": (string, True), "summary": (string, True)}), True),
    "name": (string, False),
    "dig": (string, True),
    "outcome": (one_of("succeeded", "failed", "refused"), True),
    "trace": (string, False),
    "iat": (TIME, True),
    "jti": (JTI, True),
})
WITNESS_REPORT = obj({  # 4.10 "In a report"; root and size are held by the own rules
    # `size` is an integer 0 to 2^64-1 in the table, read as such here; its
    # 1 to 100 is an own rule (README, item 21).
    "root": (string, True),
    "size": (integer(0, 2**64 - 1), True),
    "iat": (TIME, True),
    "jti": (JTI, True),
})


def read_claims(payload, schema):
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(M) from None
    return schema(parse_json(text, strict=True))


# -- 2.6 keys, 2.7 signatures: Ed25519 arithmetic for the strict checks -----------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P


def fsqrt(a):
    """A square root mod P, or None (P = 5 mod 8)."""
    r = pow(a, (P + 3) // 8, P)
    if r * r % P != a % P:
        r = r * pow(2, (P - 1) // 4, P) % P
    return r if r * r % P == a % P else None


def _order8_ys():
    # 2Q has y = 0 (order 4) iff y^2 = -x^2, so d*y^4 + 2*y^2 - 1 = 0.
    root = fsqrt(1 + D)
    ys = {fsqrt((s * root - 1) * pow(D, P - 2, P) % P) for s in (1, -1)} - {None}
    return {y for y0 in ys for y in (y0, P - y0)}


SMALL_ORDER_YS = {0, 1, P - 1} | _order8_ys()
assert len(SMALL_ORDER_YS) == 5


def y_of(raw32):
    return int.from_bytes(raw32, "little") & (2**255 - 1)


def check_point(raw32):
    """2.6 steps 1 to 3: canonical y, on the curve, not of small order."""
    y = y_of(raw32)
    if y >= P:
        return False
    yy = y * y % P
    if fsqrt((yy - 1) * pow(D * yy + 1, P - 2, P) % P) is None:
        return False
    return y not in SMALL_ORDER_YS


JWK_MEMBERS = {"kty": {"OKP"}, "crv": {"Ed25519"}, "x": None, "kid": None,
               "alg": {"EdDSA", "Ed25519"}, "use": {"sig"}}


class Key:
    def __init__(self, jwk):
        """A public key from a parsed JWK, by the rules of 2.6 (`key.invalid`)."""
        if not isinstance(jwk, dict):
            raise Refused("key.invalid")
        jwk = {k: v for k, v in jwk.items() if v is not None}
        if not set(jwk) <= set(JWK_MEMBERS) \
                or not {"kty", "crv", "x"} <= set(jwk) or not all(isinstance(v, str) for v in jwk.values()):
            raise Refused("key.invalid")
        if any(allowed and jwk[k] not in allowed for k, allowed in JWK_MEMBERS.items() if k in jwk):
            raise Refused("key.invalid")
        self.raw = b64d(jwk["x"], "key.invalid", 32)
        if not check_point(self.raw):
            raise Refused("key.invalid")
        canon = '{"crv":"Ed25519","kty":"OKP","x":"%s"}' % b64e(self.raw)
        self.thumbprint = b64e(hashlib.sha256(canon.encode()).digest())
        if "kid" in jwk and jwk["kid"] != self.thumbprint:
            raise Refused("key.invalid")
        self.jose = OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", "x": b64e(self.raw)})


def check_signature(compact, key, alg, sig):
    """The JOSE library verifies; then the rules of strict Ed25519 (2.7) that
    OpenSSL's verifier leaves out: S < L, R not of small order."""
    try:
        jws.deserialize_compact(compact, key.jose, algorithms=[alg])
    except (JoseError, ValueError):
        raise Refused("signature.invalid") from None
    if int.from_bytes(sig[32:], "little") >= L or y_of(sig[:32]) in SMALL_ORDER_YS:
        raise Refused("signature.invalid")


# -- 3 the JOSE header, checked in the order of 3.2 -----------------------------

ALGS = {"EdDSA", "Ed25519"}
UNTRUSTED = {"jku", "x5c", "x5u", "x5t", "x5t#S256"}
KNOWN_HEADER = {"alg", "typ", "kid", "jwk", "crit"} | UNTRUSTED


REQUEST_TYP = "mandate-request+jwt"


def header_key(raw):
    """3.1: the raw text of a `jwk` value, put through the strictness pass
    (2.5, the `jwk` object at depth 1), read as a JWK and checked as a key
    (2.6). Any failure makes it unusable: `key.invalid`."""
    try:
        tree = parse_json(raw, strict=True)
    except Refused:
        raise Refused("key.invalid") from None
    return Key(dict(tree))


def parse_token(compact, typ):
    """3.2. Only a request carries `jwk`: for one, `h["jwk"]` is returned as
    the usable `Key` it names."""
    if len(compact.encode()) > MAX_TOKEN_BYTES:
        raise Refused("token.too_large")
    parts = compact.split(".")
    if len(parts) != 3:
        raise Refused(M)
    # 3.2 step 4. Bytes that are not UTF-8 become lone surrogates here (and
    # only those show as such in the raw text of a value): they matter in
    # names and in alg/typ/kid/jwk. A lone surrogate escape matters in names
    # and alg/typ/kid; in jwk it makes the key unusable (step 12 on a request,
    # refused anyway by step 9 elsewhere). Other values are not looked at (3.1).
    header = parse_json(b64d(parts[0]).decode("utf-8", "surrogateescape"), strict=False)
    for (name, v), raw in zip(header, header.raw):
        if not well_formed(name) or (name in ("alg", "typ", "kid") and not isinstance(v, str)) \
                or (name in ("alg", "typ", "kid") and not well_formed(v)) \
                or (name == "jwk" and not well_formed(raw)):
            raise Refused(M)
    names = [name for name, _ in header]
    if len(set(names)) != len(names):  # step 5: the header's own members only
        raise Refused("token.duplicate_key")
    h, request = dict(header), typ == REQUEST_TYP
    checks = [
        (h.get("alg") in ALGS, "header.alg_not_allowed"),
        ("crit" not in h, "header.crit_unsupported"),
        (h.get("typ") == typ, "header.wrong_typ"),
        (not (set(h) & UNTRUSTED or ("jwk" in h and not request)), "header.untrusted_key"),
        (set(h) <= KNOWN_HEADER, "header.unknown_member"),
    ]
    for ok, code in checks:
        if not ok:
            raise Refused(code)
    b64d(h.get("kid"), "header.kid_mismatch", 32)
    if request:
        if "jwk" not in h:  # step 12
            raise Refused(M)
        h["jwk"] = header_key(header.raw[names.index("jwk")])
        if h["jwk"].thumbprint != h["kid"]:  # step 13
            raise Refused("header.kid_mismatch")
    sig = b64d(parts[2], M, 64)
    payload = b64d(parts[1], M)
    return h, payload, sig


# -- 5.3 to 5.7 locations, coverage, amounts, attenuation, the call check ----------

UNRES, SUBD, HEX2 = r"A-Za-z0-9\-._~", r"!$&'()*+,;=", r"%[0-9A-Fa-f]{2}"
PATH = rf"(?:[{UNRES}{SUBD}:@/]|{HEX2})*"
URI_FORM = re.compile(rf"[A-Za-z][A-Za-z0-9+.\-]*://(?:[{UNRES}{SUBD}:@\[\]]|{HEX2})*(?:/{PATH})?")
NAME_FORM = re.compile(PATH)
ESCAPE_RUN = re.compile(rf"(?:{HEX2})+")
REFUSED_DECODED = set("%./\\;")


def refused_char(ch):
    return is_cc(ch) or ch in REFUSED_DECODED or \
        any(c in REFUSED_DECODED or is_cc(c) for c in unicodedata.normalize("NFKC", ch))


def check_location(s):
    """5.3: the grammar, then the wildcard, dot-segment and escape rules."""
    if not 1 <= len(s.encode()) <= 2048:
        return False
    if not (URI_FORM if "://" in s else NAME_FORM).fullmatch(s):
        return False
    if "*" in s[:-1] or any(seg.split(";")[0] in (".", "..") for seg in s.split("/")):
        return False
    for run in ESCAPE_RUN.finditer(s):
        try:
            decoded = bytes.fromhex(run.group().replace("%", "")).decode("utf-8")
        except UnicodeDecodeError:
            return False
        if any(map(refused_char, decoded)):
            return False
    return True


def covers(p, c):
    return c == p or (p.endswith("/") and c.startswith(p)) or (p.endswith("*") and c.startswith(p[:-1]))


def millionths(s):
    whole, _, frac = s.partition(".")
    return int(whole) * 10**6 + int(frac.ljust(6, "0"))


RANK = {"type": 0, "action": 1, "location": 2, "currency": 3, "limit": 4}


def shape(c, p):
    if c["type"] != p["type"] or ("identifier" in p and c.get("identifier") != p["identifier"]):
        return "type"
    if not set(c["actions"]) <= set(p["actions"]):
        return "action"
    if not all(any(covers(pl, cl) for pl in p["locations"]) for cl in c["locations"]):
        return "location"
    return None


def confirm_within(child, parent):
    """5.6 `draw` step 3: a child `confirm` at least as strict as its parent's."""
    if parent is None:
        return None
    if child is None:
        return "limit"
    c, p = child.get("above"), parent.get("above")
    if c is None:
        return None  # every call: within any
    if p is None:
        return "limit"
    if c["currency"] != p["currency"]:
        return "currency"
    return "limit" if millionths(c["amount"]) > millionths(p["amount"]) else None


def draw(budget, limits):
    """Returns (failure, reduced budget): 5.6 `draw` on a copy."""
    calls, money, confirm = budget
    if calls is not None:
        if limits.get("max_calls") is None or limits["max_calls"] > calls:
            return "limit", budget
        calls -= limits["max_calls"]
    if money is not None:
        want = limits.get("max_amount")
        if want is None:
            return "limit", budget
        if want["currency"] != money[1]:
            return "currency", budget
        if millionths(want["amount"]) > money[0]:
            return "limit", budget
        money = (money[0] - millionths(want["amount"]), money[1])
    failure = confirm_within(limits.get("confirm"), confirm)
    if failure is not None:
        return failure, budget
    return None, (calls, money, confirm)  # confirm is not a budget: kept whole


def within(children, parents):
    budgets = []
    for p in parents:
        lim = p.get("limits", {})
        amt = lim.get("max_amount")
        budgets.append((lim.get("max_calls"), amt and (millionths(amt["amount"]), amt["currency"]),
                        lim.get("confirm")))
    for c in children:
        closest = "type"
        for j, p in enumerate(parents):
            failure = shape(c, p)
            if failure is None:
                failure, reduced = draw(budgets[j], c.get("limits", {}))
                if failure is None:
                    budgets[j] = reduced
                    break
            closest = max(closest, failure, key=RANK.get)
        else:
            raise Refused("scope.escalated_" + closest)


def waives(confirm, amount):
    """5.8: a detail's `confirm` lets a call through unconfirmed: absent, or
    `above` in the currency of the amount the call states, not exceeded."""
    if confirm is None:
        return True
    above = confirm.get("above")
    return above is not None and amount is not None and amount["currency"] == above["currency"] \
        and millionths(amount["amount"]) <= millionths(above["amount"])


def needs_confirmation(details, call):
    """5.8, for a call that `permits` lets through."""
    return not any(permits([d], call) and waives(d.get("limits", {}).get("confirm"), call.get("amount"))
                   for d in details)


def permits(details, call):
    """5.7 `scope::permits`. The call's amount, if any, is a money value
    (`is_money`): the caller checks that first."""
    loc, amt = call["location"], call.get("amount")
    if not check_location(loc):
        return False
    for d in details:
        money = d.get("limits", {}).get("max_amount")
        if d["type"] == call["type"] and call["action"] in d["actions"] \
                and any(covers(p, loc) for p in d["locations"]) \
                and d.get("identifier") in (None, call.get("identifier")) \
                and (not money or amt is None or (amt["currency"] == money["currency"]
                                                  and millionths(amt["amount"]) <= millionths(money["amount"]))):
            return True
    return False


# -- 6.2 chains, 6.4 windows, 6.5 proofs -----------------------------------------

def sat(a, b):
    return max(I64_MIN, min(I64_MAX, a + b))


def window(iat, nbf, exp, now):
    if nbf >= exp or iat >= exp:
        raise Refused("time.empty_window")
    if now >= sat(exp, SKEW):
        raise Refused("time.expired")
    if nbf > sat(now, SKEW):
        raise Refused("time.not_yet_valid")


def canonical_detail(d):
    out = {"type": d["type"], "actions": sorted(set(d["actions"])), "locations": d["locations"]}
    if "identifier" in d:
        out["identifier"] = d["identifier"]
    if d.get("limits"):
        out["limits"] = d["limits"]
    return out


def verify_chain(chain, keys, bindings, revoked, revoked_keys, now):
    """6.2. `keys`: thumbprint -> Key; `bindings`: set of (sub, thumbprint)."""
    if not chain:
        raise Refused("chain.empty")
    if len(chain) > MAX_LINKS:
        raise Refused("chain.too_long")
    agents, links = [], []
    for i, compact in enumerate(chain):
        if len(compact.encode()) > MAX_TOKEN_BYTES:
            raise Refused("token.too_large")
        tid = token_id(compact)
        if any(tid == link["id"] for link in links):
            raise Refused("chain.loop")
        parent = links[-1] if links else None
        expected = parent["cnf"]["jkt"] if parent else None
        h, payload, sig = parse_token(compact, "mandate-grant+jwt")
        if expected is not None and h["kid"] != expected:
            raise Refused("chain.wrong_signer")
        issuer = expected or h["kid"]
        if issuer not in keys:
            raise Refused("key.unknown")
        check_signature(compact, keys[issuer], h["alg"], sig)
        c = read_claims(payload, GRANT)
        if not c["authorization_details"]:
            raise Refused(S)
        window(c["iat"], c["nbf"], c["exp"], now)
        if c["act"]["sub"] != AGENT_PREFIX + c["cnf"]["jkt"]:
            raise Refused("chain.act_mismatch")
        if parent is None:
            if "prf" in c:
                raise Refused("chain.prf_mismatch")
            if (c["sub"], issuer) not in bindings:
                raise Refused("chain.root_not_bound")
            if issuer in revoked_keys:
                raise Refused("chain.key_revoked")
            agents.append(issuer)
        else:
            for failed, code in [
                (c.get("prf") != parent["id"], "chain.prf_mismatch"),
                (c["sub"] != parent["sub"], "chain.sub_changed"),
                (c["max_depth"] >= parent["max_depth"], "chain.depth_exceeded"),
                (c["exp"] > parent["exp"], "chain.outlives_parent"),
                (c["nbf"] < parent["nbf"], "chain.precedes_parent"),
            ]:
                if failed:
                    raise Refused(code)
            within(c["authorization_details"], parent["authorization_details"])
        if c["cnf"]["jkt"] in agents:
            raise Refused("chain.loop")
        agents.append(c["cnf"]["jkt"])
        if tid in revoked:
            raise Refused("chain.revoked")
        links.append(dict(c, id=tid))
    leaf = links[-1]
    ath = b64e(hashlib.sha256(b"".join(b64d(link["id"]) for link in links)).digest())
    return {
        "principal": links[0]["sub"], "leaf_agent": leaf["act"]["sub"], "leaf_key": leaf["cnf"]["jkt"],
        "expires_at": min(link["exp"] for link in links), "depth_left": leaf["max_depth"],
        "scopes": [canonical_detail(d) for d in leaf["authorization_details"]], "ath": ath,
    }


QUERY = re.compile(rf"(?:\?(?:[{UNRES}{SUBD}:@/?]|{HEX2})*)?(?:#(?:[{UNRES}{SUBD}:@/?]|{HEX2})*)?")


def split_http_uri(uri):
    """6.5 'well formed': (origin, path), or None."""
    cut = min([i for i in (uri.find("?"), uri.find("#")) if i >= 0], default=len(uri))
    target, rest = uri[:cut], uri[cut:]
    scheme, sep, after = target.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or after[:1] in ("", "/") \
            or "*" in target or not check_location(target) or not QUERY.fullmatch(rest):
        return None
    slash = after.find("/")
    end = len(target) if slash < 0 else len(scheme) + 3 + slash
    return target[:end].lower(), target[end:]


def same_htu(a, b):
    sa, sb = split_http_uri(a), split_http_uri(b)
    return sa is not None and sa == sb


def same_request(a, b):
    """6.8: no `#` in either, the same target, and the same text after the
    first `?` (no query differs from an empty one)."""
    query = lambda u: u.partition("?")[2] if "?" in u else None  # noqa: E731
    return "#" not in a and "#" not in b and same_htu(a, b) and query(a) == query(b)


def verify_pop(verified, keys, token, htm, htu, now, replay):
    """6.5; `replay` maps '<leaf key>:<jti>' to its keep-until time."""
    h, payload, sig = parse_token(token, "mandate-pop+jwt")
    if h["kid"] != verified["leaf_key"]:
        raise Refused("pop.wrong_key")
    if h["kid"] not in keys:
        raise Refused("key.unknown")
    check_signature(token, keys[h["kid"]], h["alg"], sig)
    c = read_claims(payload, POP)
    if now - c["iat"] > POP_MAX_AGE or c["iat"] - now > SKEW:
        raise Refused("pop.stale")
    for failed, code in [(c["htm"] != htm, "pop.htm_mismatch"),
                         (not same_htu(c["htu"], htu), "pop.htu_mismatch"),
                         (c["ath"] != verified["ath"], "pop.ath_mismatch")]:
        if failed:
            raise Refused(code)
    key = verified["leaf_key"] + ":" + c["jti"]
    if replay.get(key, now - 1) >= now:
        raise Refused("pop.replayed")
    replay[key] = c["iat"] + POP_MAX_AGE + SKEW


# -- 4.1 requests, 4.12 policies, 4.13 and 6.8 confirmations ------------------------

MAX_LIFETIME, MAX_POLICY_LIFETIME, MAX_CONFIRMATION_LIFETIME = 2592000, 7776000, 600


def verify_request(compact, now):
    """4.1 `RequestClaims::verify`: returns (claims, the signer's thumbprint)."""
    h, payload, sig = parse_token(compact, REQUEST_TYP)
    key = h["jwk"]
    check_signature(compact, key, h["alg"], sig)
    c = read_claims(payload, REQUEST)
    if not c["authorization_details"]:
        raise Refused(S)
    if not 1 <= c["lifetime"] <= MAX_LIFETIME:
        raise Refused(M)
    if c["max_depth"] >= MAX_LINKS or len(c.get("parent_chain", [])) >= MAX_LINKS:
        raise Refused("chain.too_long")
    window(c["iat"], c["iat"], c["exp"], now)
    return c, key.thumbprint


def verify_by_user(compact, typ, schema, keys, bindings, revoked_keys, now):
    """Steps 1 to 5 of 4.12 and of 6.8: a token a user signs about their own
    principal. Returns (claims, the signer's thumbprint); the caller applies
    the kind's own rules."""
    h, payload, sig = parse_token(compact, typ)
    if h["kid"] not in keys:
        raise Refused("key.unknown")
    check_signature(compact, keys[h["kid"]], h["alg"], sig)
    c = read_claims(payload, schema)
    if (c["sub"], h["kid"]) not in bindings or h["kid"] in revoked_keys:
        raise Refused("signer.not_bound")
    return c, h["kid"]


def is_label(s):
    """4.12: 1 to 256 bytes, no control character."""
    return 1 <= len(s.encode()) <= 256 and not any(map(is_cc, s))


BOUNDS = ("authorization_details", "max_lifetime", "max_depth")


def verify_policy(compact, keys, bindings, revoked_keys, now):
    """4.12 `PolicyClaims::verify`."""
    c, _ = verify_by_user(compact, "mandate-policy+jwt", POLICY, keys, bindings, revoked_keys, now)
    present = [b in c for b in BOUNDS]
    if (c["effect"] == "approve" and not all(present)) or (c["effect"] == "deny" and any(present)):
        raise Refused(M)
    if c["effect"] == "approve":
        if not c["authorization_details"]:
            raise Refused(S)
        if not 1 <= c["max_lifetime"] <= MAX_LIFETIME:
            raise Refused(M)
        if c["max_depth"] >= MAX_LINKS:
            raise Refused("chain.too_long")
        if c["exp"] - c["iat"] > MAX_POLICY_LIFETIME:
            raise Refused(M)
    if "label" in c and not is_label(c["label"]):
        raise Refused(M)
    window(c["iat"], c["iat"], c["exp"], now)
    return c


def admits(rule, request, signer):
    """4.12 `PolicyClaims::admits`: whether the rule approves the request,
    signed by `signer` (its `jwk` key's thumbprint)."""
    for failed, code in [(signer != rule["agent"]["jkt"], "policy.mismatch"),
                         (request.get("principal_hint") != rule["sub"], "policy.mismatch"),
                         (rule["effect"] == "deny", "policy.mismatch"),
                         ("oauth_client" in request, "policy.mismatch")]:
        if failed:
            raise Refused(code)
    within(request["authorization_details"], rule["authorization_details"])
    if request["lifetime"] > rule["max_lifetime"] or request["max_depth"] > rule["max_depth"]:
        raise Refused("policy.exceeded")


def verify_confirmation(verified, keys, bindings, revoked_keys, token, htm, htu, body, now, replay):
    """6.8 `ConfirmationClaims::verify`; `replay` maps (signer, ath, jti) to
    its keep-until time."""
    c, signer = verify_by_user(token, "mandate-confirmation+jwt", CONFIRMATION, keys, bindings,
                               revoked_keys, now)
    if c["exp"] - c["iat"] > MAX_CONFIRMATION_LIFETIME:
        raise Refused(M)
    window(c["iat"], c["iat"], c["exp"], now)
    for failed, code in [
        (c["sub"] != verified["principal"] or c["cnf"]["jkt"] != verified["leaf_key"]
         or c["ath"] != verified["ath"], "confirm.mismatch"),
        (c["htm"] != htm or not same_request(c["htu"], htu), "confirm.mismatch"),
        (c["bdh"] != b64e(hashlib.sha256(body).digest()), "confirm.body_mismatch"),
    ]:
        if failed:
            raise Refused(code)
    key = (signer, c["ath"], c["jti"])
    if replay.get(key, now - 1) >= now:
        raise Refused("confirm.replayed")
    replay[key] = sat(c["exp"], SKEW)


# -- 4.10 witness receipts: a compact token, or a receipt of a report ----------------

WITNESS_TYP, REPORT_TYP = "mandate-witness+jwt", "mandate-witness-report+jwt"
MAX_REPORT_SIZE = 100
TRACE = re.compile("[0-9a-f]{32}")
INDEX = re.compile("0|[1-9][0-9]?")  # from 0, no leading zero, below 100


def is_b64_32(s):
    """base64url of exactly 32 bytes: 43 characters that decode to 32 bytes
    and encode back to the same text (`dig`, `root`, each hash of a path)."""
    try:
        b64d(s, M, 32)
    except Refused:
        return False
    return True


def verify_by_witness(compact, typ, schema, key):
    """4.10 steps 1 to 4 (and step 2 of a receipt in a report): parse, `kid`
    against the witness key, signature, claims. The caller applies the own rules."""
    h, payload, sig = parse_token(compact, typ)
    if h["kid"] != key.thumbprint:
        raise Refused("header.kid_mismatch")
    check_signature(compact, key, h["alg"], sig)
    return read_claims(payload, schema)


def is_witness_name(s):
    """4.10: 1 to 2048 bytes, no control character."""
    return 1 <= len(s.encode()) <= 2048 and not any(map(is_cc, s))


def witness_rules(c, now):
    """4.10 own rules (`Claims::check`), in order: the time, then the grammars."""
    if c["iat"] > sat(now, SKEW):
        raise Refused("time.not_yet_valid")
    trace = c.get("trace")
    if not is_b64_32(c["dig"]) or (trace is not None and (not TRACE.fullmatch(trace) or set(trace) == {"0"})) \
            or ("name" in c and not is_witness_name(c["name"])):
        raise Refused(M)


def report_rules(c, now):
    """4.10 "In a report": the report's own rules, as listed."""
    if c["iat"] > sat(now, SKEW):
        raise Refused("time.not_yet_valid")
    if not is_b64_32(c["root"]) or not 1 <= c["size"] <= MAX_REPORT_SIZE:
        raise Refused(M)


def against_grant(c, grant_id, details):
    """4.10 steps 5 and 6, against G (its id and its details)."""
    if c["grant"] != grant_id:
        raise Refused(M)
    target = c["action"]["target"]
    # 5.3's grammar, as for a call's location, then coverage (5.4); type
    # and action are not checked (README, item 22).
    if not check_location(target) or \
            not any(covers(p, target) for d in details for p in d["locations"]):
        raise Refused("call.out_of_scope")


def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def proves(leaf, index, size, path, root):
    """RFC 9162 section 2.1.3.2: whether `path` (raw hashes, nearest sibling
    first) proves `leaf` (a leaf hash) to be leaf `index` of the tree of
    `size` leaves whose head is `root`. A path of the wrong length fails."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False  # a hash too many
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:  # fn == sn, a right edge: up to where it is a right child
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root  # sn > 0: a hash too few


def split_report_receipt(text):
    """Step 1 of a receipt in a report: (REPORT, index, path, PAYLOAD). Each
    hash of the path is part of its grammar: 43 characters, canonical."""
    if len(text.encode()) > MAX_TOKEN_BYTES:
        raise Refused("token.too_large")
    parts = text.split("~")
    if len(parts) != 4:
        raise Refused(M)
    report, index, path, payload = parts
    hashes = path.split(".") if path else []
    if not INDEX.fullmatch(index) or not all(map(is_b64_32, hashes)):
        raise Refused(M)
    return report, int(index), [b64d(x) for x in hashes], payload


def verify_witness(text, key, grant_id, details, now):
    """4.10: a witness receipt in either form, under the witness key `key`,
    against the grant G whose id is `grant_id` and whose details are
    `details`. A text with `~` is a receipt of a report (`verify_witness`),
    one without a compact token (`Receipt::witnessed`). Returns the claims."""
    if "~" not in text:
        c = verify_by_witness(text, WITNESS_TYP, WITNESS, key)  # steps 1 to 4
        witness_rules(c, now)
    else:
        report, index, path, payload = split_report_receipt(text)  # step 1
        r = verify_by_witness(report, REPORT_TYP, WITNESS_REPORT, key)  # step 2
        report_rules(r, now)
        if index >= r["size"]:  # step 3
            raise Refused(M)
        # The leaf is the PAYLOAD text's bytes: UTF-8, ASCII where it is (README, item 24).
        if not proves(leaf_hash(payload.encode()), index, r["size"], path, b64d(r["root"])):  # step 4
            raise Refused("signature.invalid")
        c = read_claims(b64d(payload, M), WITNESS)  # step 5
        witness_rules(c, now)
    against_grant(c, grant_id, details)  # steps 5 and 6 (step 6 in a report)
    return c
