#!/usr/bin/env python3
"""Replays the exchanges of "## From any language" (docs/agents.md) against a
live stack: the test OIDC provider, mandate-broker, mandate-resource-example,
and mandate-engine as the user.

The doc is this test's input. At run time the section is cut out of
docs/agents.md (or $WALKTHROUGH_DOC), and its Notation is applied:

- ``Exchange `NAME`:`` then two ```http blocks: a request and its response.
- ``Header of `{{NAME}}`:`` / ``Claims of `{{NAME}}`:`` then a ```json
  block: the template of a token this agent signs.
- ``{{name}}`` placeholders: computed as the prose says (RULES below), or,
  in a response, captured when not yet defined.

Each request is sent exactly as the doc shows it after substitution (plus
Content-Length), each response is held to the doc: status, the headers
shown, the body. Nothing here knows the exchanges' paths, headers or
bodies; a change to the doc's blocks changes what is tested.

Only three exchanges need the user (USER_STEPS below), and mandate-engine
plays the user there.

Written from that one section of the docs, without the Rust or protocol.md.
"""

import atexit
import base64
import hashlib
import http.client
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DOC = os.environ.get("WALKTHROUGH_DOC", os.path.join(REPO, "docs", "agents.md"))
BIN = os.environ.get("WALKTHROUGH_BIN", "")
SECTION = "## From any language"

# How the harness plays the user, and where. Each entry names a doc exchange;
# the step runs just before that exchange is sent.
#   approve: the user approves the request filed in `submit` (main scope).
#   deny / lapse: the doc says these exchanges are "for requests other than
#     the one approved above: their names stand for those requests' values".
#     So a fresh scope is forked from the state before `submit`, a new
#     request is filed there by replaying the doc's `submit` exchange, and
#     the user denies it, or leaves it undecided until it lapses.
USER_STEPS = {
    "poll-approved": "approve",
    "poll-denied": "deny",
    "poll-expired": "lapse",
}
FILE_EXCHANGE = "submit"  # the exchange that files a request
DENY_REASON = "Not this quarter"
# The doc's requests lapse after 600 s ("here {{request_iat}} + 600"); the
# request left to lapse is filed with a shorter `exp` so the test need not
# wait ten minutes.
LAPSE_SECONDS = 4
USER = "alice"

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class Failure(Exception):
    pass


# --------------------------------------------------------------------------
# Encodings (section "Encodings")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text) or len(text) % 4 == 1:
        raise Failure(f"not base64url: {text!r}")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_id(token: str) -> str:
    return b64(hashlib.sha256(token.encode("ascii")).digest())


def chain_hash(tokens) -> str:
    inner = b"".join(hashlib.sha256(t.encode("ascii")).digest() for t in tokens)
    return b64(hashlib.sha256(inner).digest())


def thumbprint(x: str) -> str:
    canon = '{"crv":"Ed25519","kty":"OKP","x":"%s"}' % x
    return b64(hashlib.sha256(canon.encode("utf-8")).digest())


def fresh_jti() -> str:
    return b64(secrets.token_bytes(16))


def binding_code() -> str:
    chars = [CROCKFORD[b & 31] for b in secrets.token_bytes(8)]
    return "".join(chars[:4]) + "-" + "".join(chars[4:])


def pub_x(key: Ed25519PrivateKey) -> str:
    return b64(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def sign_token(header: dict, claims: dict, key: Ed25519PrivateKey) -> str:
    def part(obj):
        return b64(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))

    signing_input = part(header) + "." + part(claims)
    return signing_input + "." + b64(key.sign(signing_input.encode("ascii")))


def decode_token(token: str):
    parts = token.split(".")
    if len(parts) != 3:
        raise Failure(f"not a compact token: {token[:40]}…")
    return json.loads(unb64(parts[0])), json.loads(unb64(parts[1])), parts


def verify_token(token: str, x: str) -> bool:
    _, _, parts = decode_token(token)
    try:
        Ed25519PublicKey.from_public_bytes(unb64(x)).verify(
            unb64(parts[2]), (parts[0] + "." + parts[1]).encode("ascii")
        )
        return True
    except InvalidSignature:
        return False


# --------------------------------------------------------------------------
# Reading the doc

PH = re.compile(r"\{\{([A-Za-z0-9_]+)\}\}")


def read_section(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    try:
        start = lines.index(SECTION)
    except ValueError:
        raise Failure(f"{path}: no line {SECTION!r}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end], start


def parse_section(lines, first_line):
    """The section's exchanges (in order), token templates, and the names the
    Notation lists as single-use proofs."""
    exchanges, templates = [], {}
    pending = None  # ("exchange", name, blocks, lineno) or ("token", kind, name, lineno)
    i = 0
    while i < len(lines):
        line = lines[i]
        lineno = first_line + i + 1
        fence = re.match(r"^(```+)(\S*)\s*$", line)
        if fence:
            ticks, info = fence.group(1), fence.group(2)
            j = i + 1
            while j < len(lines) and lines[j].rstrip() != ticks:
                j += 1
            if j == len(lines):
                raise Failure(f"doc line {lineno}: unclosed fence")
            body = "\n".join(lines[i + 1 : j])
            if pending and pending[0] == "exchange":
                if info != "http":
                    raise Failure(f"doc line {lineno}: exchange `{pending[1]}` wants ```http blocks, got ```{info}")
                pending[2].append(body)
                if len(pending[2]) == 2:
                    exchanges.append({"name": pending[1], "request": pending[2][0], "response": pending[2][1], "line": pending[3]})
                    pending = None
            elif pending and pending[0] == "token":
                _, kind, name, at = pending
                if info != "json":
                    raise Failure(f"doc line {lineno}: {kind} of {{{{{name}}}}} wants a ```json block")
                if kind in templates.setdefault(name, {}):
                    raise Failure(f"doc line {lineno}: a second {kind} of {{{{{name}}}}}")
                templates[name][kind] = body
                pending = None
            i = j + 1
            continue
        m = re.match(r"^Exchange `([^`]+)`:\s*$", line)
        if m:
            if pending:
                raise Failure(f"doc line {lineno}: {pending[:2]} has no blocks before the next exchange")
            if any(e["name"] == m.group(1) for e in exchanges):
                raise Failure(f"doc line {lineno}: a second exchange `{m.group(1)}`")
            pending = ("exchange", m.group(1), [], lineno)
        m = re.match(r"^(Header|Claims) of `\{\{([A-Za-z0-9_]+)\}\}`:\s*$", line)
        if m:
            if pending:
                raise Failure(f"doc line {lineno}: {pending[:2]} has no blocks before the next token")
            pending = ("token", m.group(1), m.group(2), lineno)
        i += 1
    if pending:
        raise Failure(f"doc: {pending[:2]} has no blocks")
    for name, t in templates.items():
        if set(t) != {"Header", "Claims"}:
            raise Failure(f"doc: token {{{{{name}}}}} lacks a header or a claims block")

    text = "\n".join(lines)
    m = re.search(r"^- \*\*Proofs are single-use\.\*\*(.*?)(?=^- \*\*|^\s*$)", text, re.M | re.S)
    if not m:
        raise Failure("doc: the Notation has no 'Proofs are single-use' bullet")
    proofs = PH.findall(m.group(1))
    return exchanges, templates, proofs, text


def parse_http(block, what):
    head, sep, body = block.partition("\n\n")
    head_lines = head.split("\n")
    first, headers = head_lines[0], []
    for h in head_lines[1:]:
        name, colon, value = h.partition(":")
        if not colon:
            raise Failure(f"{what}: header line without ':': {h!r}")
        headers.append((name.strip(), value.strip()))
    return first, headers, body


# --------------------------------------------------------------------------
# Placeholders in templates


def substitute(template, get, json_aware):
    """Writes each {{name}}'s value in its place: inside a JSON string its
    characters, escaped; elsewhere its text (an integer, in JSON)."""
    out, in_string, escaped, i = [], False, False, 0
    while i < len(template):
        m = PH.match(template, i)
        if m:
            value = get(m.group(1))
            if json_aware and in_string:
                out.append(json.dumps(str(value), ensure_ascii=False)[1:-1])
            elif json_aware:
                if not isinstance(value, int) or isinstance(value, bool):
                    raise Failure(f"{{{{{m.group(1)}}}}} stands outside a JSON string but is not an integer: {value!r}")
                out.append(str(value))
            else:
                out.append(str(value))
            i = m.end()
            continue
        c = template[i]
        if json_aware:
            if escaped:
                escaped = False
            elif c == "\\" and in_string:
                escaped = True
            elif c == '"':
                in_string = not in_string
        out.append(c)
        i += 1
    return "".join(out)


NONSTRING = "\u0001"


def response_template(text):
    """Parses a response body template into JSON, with each placeholder that
    stands outside a string turned into the string "\\u0001name"."""
    out, in_string, escaped, i = [], False, False, 0
    while i < len(text):
        m = PH.match(text, i)
        if m and not in_string:
            out.append('"\\u0001%s"' % m.group(1))
            i = m.end()
            continue
        c = text[i]
        if escaped:
            escaped = False
        elif c == "\\" and in_string:
            escaped = True
        elif c == '"':
            in_string = not in_string
        out.append(c)
        i += 1
    return json.loads("".join(out))


def match_text(template, actual, where, found):
    """Matches a string with placeholders against the actual string."""
    pieces = PH.split(template)
    if len(pieces) == 1:
        if template != actual:
            raise Failure(f"{where}: doc says {template!r}, got {actual!r}")
        return
    regex = "".join(re.escape(p) if k % 2 == 0 else "(.*?)" for k, p in enumerate(pieces))
    m = re.fullmatch(regex, actual, re.S)
    if not m:
        raise Failure(f"{where}: doc says {template!r}, got {actual!r}")
    for name, value in zip(pieces[1::2], m.groups()):
        bind(found, name, value, where)


def bind(found, name, value, where):
    if name in found and found[name] != value:
        raise Failure(f"{where}: {{{{{name}}}}} is {found[name]!r} in one place and {value!r} in another")
    found[name] = value


def match_json(tmpl, actual, where, found, extras, error_body):
    if isinstance(tmpl, str) and tmpl.startswith(NONSTRING):
        name = tmpl[1:]
        if not isinstance(actual, int) or isinstance(actual, bool):
            raise Failure(f"{where}: {{{{{name}}}}} should be a JSON integer, got {actual!r}")
        bind(found, name, actual, where)
    elif isinstance(tmpl, str):
        if not isinstance(actual, str):
            raise Failure(f"{where}: doc shows a string, got {actual!r}")
        match_text(tmpl, actual, where, found)
    elif isinstance(tmpl, dict):
        if not isinstance(actual, dict):
            raise Failure(f"{where}: doc shows an object, got {actual!r}")
        for key, sub in tmpl.items():
            if key not in actual:
                raise Failure(f"{where}: member {key!r} is missing")
            if error_body and where == "body" and key == "message":
                if not isinstance(actual[key], str):
                    raise Failure(f"{where}.message: not a string: {actual[key]!r}")
                continue
            match_json(sub, actual[key], f"{where}.{key}", found, extras, error_body)
        for key in actual:
            if key not in tmpl:
                extras.append((f"{where}.{key}", actual[key]))
    elif isinstance(tmpl, list):
        if not isinstance(actual, list) or len(actual) != len(tmpl):
            raise Failure(f"{where}: doc shows a list of {len(tmpl)}, got {actual!r}")
        for k, (t, a) in enumerate(zip(tmpl, actual)):
            match_json(t, a, f"{where}[{k}]", found, extras, error_body)
    else:
        if type(tmpl) is not type(actual) or tmpl != actual:
            raise Failure(f"{where}: doc says {json.dumps(tmpl)}, got {json.dumps(actual)}")


# --------------------------------------------------------------------------
# Values: what the prose says each placeholder is


class Scope:
    def __init__(self, world, values=None, keys=None, overrides=None, label="main"):
        self.world = world  # templates, harness facts
        self.values = dict(values or {})
        self.keys = dict(keys or {})  # role -> private key
        self.overrides = dict(overrides or {})
        self.label = label
        self.computing = []

    def fork(self, label, overrides=None):
        return Scope(self.world, self.values, self.keys, overrides, label)

    def has_rule(self, name):
        return name in self.overrides or rule_for(name, self.world) is not None

    def get(self, name):
        if name in self.values:
            return self.values[name]
        rule = self.overrides.get(name) or rule_for(name, self.world)
        if rule is None:
            raise Failure(
                f"{{{{{name}}}}} has no value: the prose gives no way to compute it and no earlier response defined it"
            )
        if name in self.computing:
            raise Failure(f"{{{{{name}}}}} depends on itself: {self.computing}")
        self.computing.append(name)
        try:
            value = rule(self)
        finally:
            self.computing.pop()
        self.values[name] = value
        return value

    def key(self, role):
        """Step 1 (and step 6 for the reader): an Ed25519 key pair."""
        if role not in self.keys:
            self.keys[role] = Ed25519PrivateKey.generate()
        return self.keys[role]

    def forget(self, names):
        for n in names:
            self.values.pop(n, None)


def now():
    return int(time.time())


def sign_from_template(scope, name):
    """Tokens you sign: the doc's header and claims, placeholders written in,
    signed by the key whose thumbprint is the header's `kid`."""
    t = scope.world["templates"][name]
    header = json.loads(substitute(t["Header"], scope.get, True))
    claims = json.loads(substitute(t["Claims"], scope.get, True))
    kid = header.get("kid")
    for role, key in scope.keys.items():
        if thumbprint(pub_x(key)) == kid:
            return sign_token(header, claims, key)
    raise Failure(f"{{{{{name}}}}}: its kid {kid!r} is none of this agent's keys ({sorted(scope.keys)})")


def agent_rules(role):
    return {
        # "{{planner_x}}: base64url of the 32-byte public key"
        f"{role}_x": lambda s: pub_x(s.key(role)),
        # "{{planner_jkt}}: the key's RFC 7638 thumbprint"
        f"{role}_jkt": lambda s: thumbprint(s.get(f"{role}_x")),
        # "{{planner_id}}, the agent id: urn:ietf:params:oauth:jwk-thumbprint:sha-256:{{planner_jkt}}"
        f"{role}_id": lambda s: "urn:ietf:params:oauth:jwk-thumbprint:sha-256:" + s.get(f"{role}_jkt"),
    }


def claim(token_name, member):
    return lambda s: decode_token(s.get(token_name))[1][member]


RULES = {
    # 0. `{{broker_host}}` is the host and port of `{{broker_url}}`, as Host carries them.
    "broker_host": lambda s: urllib.parse.urlsplit(s.get("broker_url")).netloc,
    # `{{broker_jkt}}` its thumbprint (of `{{broker_x}}`).
    "broker_jkt": lambda s: thumbprint(s.get("broker_x")),
    # 1. and 6. the agents' keys
    **agent_rules("planner"),
    **agent_rules("reader"),
    # 2. `{{binding_code}}` is made by you: 8 random bytes, ALPHABET[byte & 31], a '-' after the fourth.
    "binding_code": lambda s: binding_code(),
    "reader_binding_code": lambda s: binding_code(),
    # `{{request_exp}}`: here `{{request_iat}}` + 600.
    "request_exp": lambda s: s.get("request_iat") + 600,
    # `{{request_id}}` is its (the request token's) token id.
    "request_id": lambda s: token_id(s.get("request_token")),
    # 4. `{{poll_url}}` is `{{broker_url}}/v1/requests/{{request_id}}`.
    "poll_url": lambda s: s.get("broker_url") + "/v1/requests/" + s.get("request_id"),
    # `{{request_ath}}` is the chain hash of the one-token list `[{{request_token}}]`.
    "request_ath": lambda s: chain_hash([s.get("request_token")]),
    # `{{root_grant_id}}` is its token id. `{{root_nbf}}` and `{{root_exp}}` are its `nbf` and `exp` claims.
    "root_grant_id": lambda s: token_id(s.get("root_grant")),
    "root_nbf": claim("root_grant", "nbf"),
    "root_exp": claim("root_grant", "exp"),
    # `{{user_jkt}}` its (`{{user_x}}`'s) thumbprint.
    "user_jkt": lambda s: thumbprint(s.get("user_x")),
    # 5. `{{chain_ath}}` is the chain hash of `[{{root_grant}}]`.
    "chain_ath": lambda s: chain_hash([s.get("root_grant")]),
    # `{{replayed_proof}}` is ... the `{{call_proof}}` of the `call` exchange.
    "replayed_proof": lambda s: s.world["sent"]["call"]["call_proof"],
    # 6. `{{reader_grant_nbf}}` is the later of now and `{{root_nbf}}`.
    "reader_grant_nbf": lambda s: max(now(), s.get("root_nbf")),
    # `{{reader_grant_exp}}` is the earlier of now + 900 and `{{root_exp}}`.
    "reader_grant_exp": lambda s: min(now() + 900, s.get("root_exp")),
    "reader_grant_id": lambda s: token_id(s.get("reader_grant")),
    "reader_chain_ath": lambda s: chain_hash([s.get("root_grant"), s.get("reader_grant")]),
    # `{{reader_request_exp}}` (`{{reader_request_iat}}` + 600)
    "reader_request_exp": lambda s: s.get("reader_request_iat") + 600,
    "reader_request_id": lambda s: token_id(s.get("reader_request")),
    # `{{endorsement_ath}}` is the chain hash of `[{{root_grant}}, {{reader_request}}]`.
    "endorsement_ath": lambda s: chain_hash([s.get("root_grant"), s.get("reader_request")]),
    # 7. `{{receipt_id}}` its token id; `{{reader_receipt_id}}` its token id.
    "receipt_id": lambda s: token_id(s.get("receipt")),
    "reader_receipt_id": lambda s: token_id(s.get("reader_receipt")),
}


def rule_for(name, world):
    if name in RULES:
        return RULES[name]
    if name in world["templates"]:
        return lambda s: sign_from_template(s, name)
    # Every step says "`{{X_iat}}` is now; `{{X_jti}}` a fresh `jti`".
    if name.endswith("_iat"):
        return lambda s: now()
    if name.endswith("_jti"):
        return lambda s: fresh_jti()
    return None


def is_fresh(name):
    return name.endswith("_iat") or name.endswith("_jti")


# Checks the prose asks of captured values, run once all of a response is in.


def check_expires_at(prefix):
    def check(s, value, ctx):
        # "`{{request_exp}}`, but at most one hour after the broker filed it"
        exp = s.get(f"{prefix}_exp")
        lo, hi = ctx["sent_at"], ctx["received_at"]
        if exp <= lo + 3600:
            if value != exp:
                raise Failure(f"{{{{{prefix}_expires_at}}}} is {value}; the prose says {{{{{prefix}_exp}}}}, {exp}")
        elif not (lo + 3600 - 1 <= value <= hi + 3600 + 1):
            raise Failure(f"{{{{{prefix}_expires_at}}}} is {value}, not one hour after filing")

    return check


def check_root_grant(s, grant, ctx):
    # "Before you use the grant, check it as the SDK does."
    header, claims, _ = decode_token(grant)
    want = {
        "req": s.get("request_id"),
        "sub": s.get("principal"),
    }
    for k, v in want.items():
        if claims.get(k) != v:
            raise Failure(f"the grant's `{k}` is {claims.get(k)!r}, not {v!r}")
    if claims.get("cnf", {}).get("jkt") != s.get("planner_jkt"):
        raise Failure(f"the grant's `cnf.jkt` is {claims.get('cnf')!r}, not the planner's thumbprint")
    if claims.get("act", {}).get("sub") != s.get("planner_id"):
        raise Failure(f"the grant's `act.sub` is {claims.get('act')!r}, not {{{{planner_id}}}}")
    if header.get("kid") != s.get("user_jkt"):
        raise Failure(f"the grant's `kid` is {header.get('kid')!r}, not {{{{user_jkt}}}}")
    if header.get("typ") != "mandate-grant+jwt":
        raise Failure(f"the grant's `typ` is {header.get('typ')!r}")
    if not verify_token(grant, s.get("user_x")):
        raise Failure("the grant's signature does not verify under {{user_x}}")


def check_binding(s, binding, ctx):
    # "The binding verifies under {{broker_x}}, its iss is {{broker_url}}, its
    # sub is the grant's sub, and its cnf.jkt is {{user_jkt}}."
    header, claims, _ = decode_token(binding)
    if header.get("typ") != "mandate-binding+jwt":
        raise Failure(f"the binding's `typ` is {header.get('typ')!r}")
    if not verify_token(binding, s.get("broker_x")):
        raise Failure("the binding does not verify under {{broker_x}}")
    if claims.get("iss") != s.get("broker_url"):
        raise Failure(f"the binding's `iss` is {claims.get('iss')!r}, not {{{{broker_url}}}}")
    if claims.get("sub") != decode_token(s.get("root_grant"))[1].get("sub"):
        raise Failure("the binding's `sub` is not the grant's")
    if claims.get("cnf", {}).get("jkt") != s.get("user_jkt"):
        raise Failure("the binding's `cnf.jkt` is not {{user_jkt}}")


def check_denial(s, denial, ctx):
    # "Its claims are sub, req (the request's id), iat, jti, and an optional
    # reason, the user's words"
    header, claims, _ = decode_token(denial)
    if header.get("typ") != "mandate-denial+jwt":
        raise Failure(f"the denial's `typ` is {header.get('typ')!r}")
    extra = set(claims) - {"sub", "req", "iat", "jti", "reason"}
    if extra or not {"sub", "req", "iat", "jti"} <= set(claims):
        raise Failure(f"the denial's claims are {sorted(claims)}")
    if claims["req"] != s.get("request_id"):
        raise Failure("the denial's `req` is not {{request_id}}")
    if claims["sub"] != s.get("principal"):
        raise Failure("the denial's `sub` is not {{principal}}")
    if claims.get("reason") != DENY_REASON:
        raise Failure(f"the denial's `reason` is {claims.get('reason')!r}, not the user's {DENY_REASON!r}")
    # Not in the section: which key signs it. The user's, presumably.
    main = s.world["main"]
    if "user_jkt" in main.values and header.get("kid") == main.values["user_jkt"]:
        if not verify_token(denial, main.values["user_x"]):
            raise Failure("the denial does not verify under {{user_x}}")


def check_oidc_issuer(s, value, ctx):
    if value != s.world["issuer"]:
        raise Failure(f"{{{{oidc_issuer}}}} is {value!r}, not the broker's --issuer {s.world['issuer']!r}")


CHECKS = {
    "request_expires_at": check_expires_at("request"),
    "reader_request_expires_at": check_expires_at("reader_request"),
    "root_grant": check_root_grant,
    "binding": check_binding,
    "denial": check_denial,
    "oidc_issuer": check_oidc_issuer,
}


# --------------------------------------------------------------------------
# Processes


class Stack:
    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []
        self.n = 0

    def start(self, name, argv, env=None):
        out = open(os.path.join(self.tmp, f"{name}.out"), "wb")
        err = open(os.path.join(self.tmp, f"{name}.err"), "wb")
        p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=self.tmp)
        self.procs.append((name, p))
        return p

    def wait_line(self, name, proc, pattern, timeout=30):
        path = os.path.join(self.tmp, f"{name}.out")
        deadline = time.time() + timeout
        while time.time() < deadline:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    m = re.search(pattern, line)
                    if m:
                        return m
            if proc.poll() is not None:
                raise Failure(f"{name} exited ({proc.returncode}) before printing /{pattern}/; see {self.tmp}/{name}.err:\n{self.tail(name)}")
            time.sleep(0.05)
        raise Failure(f"{name} printed no /{pattern}/ within {timeout} s; see {self.tmp}/{name}.err")

    def tail(self, name):
        try:
            with open(os.path.join(self.tmp, f"{name}.err"), encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-15:])
        except OSError:
            return ""

    def run(self, name, argv, env=None, timeout=60):
        self.n += 1
        base = os.path.join(self.tmp, f"{self.n:02d}-{name}")
        with open(base + ".out", "wb") as out, open(base + ".err", "wb") as err:
            p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=self.tmp)
            self.procs.append((name, p))
            try:
                rc = p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise Failure(f"{' '.join(argv[-3:])} took more than {timeout} s; see {base}.err")
        stdout = open(base + ".out", encoding="utf-8").read()
        stderr = open(base + ".err", encoding="utf-8").read()
        if rc != 0:
            raise Failure(f"{name} failed ({rc}): {stderr.strip()}")
        return stdout

    def stop(self):
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for name, p in reversed(self.procs):
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        self.procs = []


def binary(name):
    path = os.path.join(BIN, name) if BIN else name
    if BIN and not os.access(path, os.X_OK):
        raise Failure(f"no binary {path}")
    return path


class User:
    """The user, played by mandate-engine (the desktop app's engine)."""

    def __init__(self, stack, issuer, broker_url):
        self.stack = stack
        self.data = os.path.join(stack.tmp, "engine-data")
        self.argv = [
            binary("mandate-engine"),
            "--issuer", issuer,
            "--broker", broker_url,
            "--data-dir", self.data,
            "--keyring-service", f"walkthrough-{os.getpid()}",
        ]

    def run(self, *args, env=None):
        return self.stack.run("engine-" + args[0], self.argv + list(args), env=env)

    def signin(self):
        env = dict(os.environ)
        env["MANDATE_BROWSER"] = f"node {os.path.join(REPO, 'tests', 'idp', 'browse.mjs')} --user {USER}"
        self.run("signin", env=env)

    def wait_in_inbox(self, request_id, timeout=20):
        deadline = time.time() + timeout
        while True:
            inbox = json.loads(self.run("inbox"))
            if any(r.get("id") == request_id for r in inbox):
                return
            if time.time() > deadline:
                raise Failure(f"request {request_id} is not in the user's inbox after {timeout} s: {inbox}")
            time.sleep(0.5)

    def deliver(self, timeout=20):
        deadline = time.time() + timeout
        while True:
            left = json.loads(self.run("deliver"))
            n = left if isinstance(left, int) else (left.get("waiting", left.get("pending", 0)) if isinstance(left, dict) else 0)
            if not n:
                return
            if time.time() > deadline:
                raise Failure(f"mandate-engine deliver: {left} decisions still wait after {timeout} s")
            time.sleep(0.5)

    def approve(self, request_id):
        self.wait_in_inbox(request_id)
        self.run("approve", "--", request_id)
        self.deliver()

    def deny(self, request_id, reason):
        self.wait_in_inbox(request_id)
        self.run("deny", "--reason", reason, "--", request_id)
        self.deliver()


# --------------------------------------------------------------------------
# Replaying an exchange


class Walk:
    def __init__(self, world, stack):
        self.world = world
        self.stack = stack
        self.passed = 0
        self.transcript = open(os.path.join(stack.tmp, "transcript.txt"), "w", encoding="utf-8")

    def servers(self, scope):
        """Where a request goes: the server whose host its Host header names."""
        out = {}
        for url_name, host_name in (("broker_url", "broker_host"), ("resource_origin", "resource_host")):
            if url_name in scope.values or scope.has_rule(url_name):
                out[scope.get(host_name)] = (scope.get(url_name), self.world["connect"][url_name])
        return out

    def exchange(self, ex, scope, label=None):
        label = label or f"exchange `{ex['name']}`"
        names_in_request = PH.findall(ex["request"])
        # Proofs are single-use: a new one, with its own iat and a fresh jti,
        # for each exchange that shows it.
        for proof in self.world["proofs"]:
            if proof in names_in_request:
                t = self.world["templates"].get(proof)
                if t is None:
                    raise Failure(f"{label}: proof {{{{{proof}}}}} has no Header/Claims in the doc")
                scope.forget([proof] + [n for n in PH.findall(t["Header"] + t["Claims"]) if is_fresh(n)])
        try:
            self._exchange(ex, scope, label)
        except Failure as e:
            raise Failure(f"{label} (doc line {ex['line']}, scope {scope.label}): {e}") from None
        self.passed += 1
        print(f"ok   {label}" + ("" if scope.label == "main" else f" [{scope.label}]"), flush=True)

    def _exchange(self, ex, scope, label):
        first, headers, body = parse_http(ex["request"], "request")
        m = re.fullmatch(r"([A-Z]+) (\S+) HTTP/1\.1", first)
        if not m:
            raise Failure(f"request line {first!r} is not `METHOD PATH HTTP/1.1`")
        method = m.group(1)
        path = substitute(m.group(2), scope.get, False)
        sent_headers = [(n, substitute(v, scope.get, False)) for n, v in headers]
        json_body = any(n.lower() == "content-type" and "json" in v for n, v in headers)
        sent_body = substitute(body, scope.get, json_body) if body else ""
        if json_body and sent_body:
            json.loads(sent_body)  # the doc's body, filled in, is JSON
        scope.world["sent"][ex["name"]] = {n: scope.values[n] for n in PH.findall(ex["request"]) if n in scope.values}

        hosts = [v for n, v in sent_headers if n.lower() == "host"]
        if len(hosts) != 1:
            raise Failure(f"the request shows {len(hosts)} Host headers; cannot tell which server it is for")
        servers = self.servers(scope)
        if hosts[0] not in servers:
            raise Failure(f"Host {hosts[0]!r} is none of the servers {sorted(servers)}")
        base_url, (chost, cport) = servers[hosts[0]]
        # "For a broker whose URL has a path of its own ... put that path in front."
        prefix = urllib.parse.urlsplit(base_url).path.rstrip("/")
        target = prefix + path
        wait = re.search(r"[?&]wait=(\d+)", path)
        timeout = int(wait.group(1)) + 30 if wait else 30

        status_line, resp_headers, resp_body = parse_http(ex["response"], "response")
        sm = re.fullmatch(r"HTTP/1\.1 (\d{3}) (.*)", status_line)
        if not sm:
            raise Failure(f"status line {status_line!r} is not `HTTP/1.1 STATUS Reason`")
        want_status, want_reason = int(sm.group(1)), sm.group(2)

        deadline = time.time() + 30
        while True:
            sent_at = time.time()
            status, reason, got_headers, raw = self.send(chost, cport, method, target, sent_headers, sent_body, timeout)
            received_at = time.time()
            self.log(label, method, target, sent_headers, sent_body, status, reason, got_headers, raw)
            # 503 revocation.stale: "the server's revocation list is not
            # current (also for a moment after it starts) | Try again in a
            # few seconds." Only the resource server says it.
            if status == 503 and want_status != 503 and time.time() < deadline and b"revocation.stale" in raw:
                time.sleep(1)
                for proof in self.world["proofs"]:
                    if proof in PH.findall(ex["request"]):
                        t = self.world["templates"][proof]
                        scope.forget([proof] + [n for n in PH.findall(t["Header"] + t["Claims"]) if is_fresh(n)])
                sent_headers = [(n, substitute(v, scope.get, False)) for n, v in headers]
                scope.world["sent"][ex["name"]] = {n: scope.values[n] for n in PH.findall(ex["request"]) if n in scope.values}
                print(f"     {label}: 503 revocation.stale, the server is not ready; again", flush=True)
                continue
            break

        body_text = raw.decode("utf-8", errors="replace")
        if status != want_status:
            raise Failure(f"status {status} {reason}, the doc says {want_status} {want_reason}; body: {body_text[:500]}")
        if reason != want_reason:
            self.world["notes"].append(f"{label}: reason phrase {reason!r}, the doc shows {want_reason!r}")

        # "The servers also send `content-length` and `date`."
        for name in ("content-length", "date"):
            if not any(n.lower() == name for n, _ in got_headers):
                raise Failure(f"the response has no {name} header")
        found = {}
        for name, value in resp_headers:
            got = [v for n, v in got_headers if n.lower() == name.lower()]
            if not got:
                raise Failure(f"response header {name} is missing (got {[n for n, _ in got_headers]})")
            match_text(value, ", ".join(got), f"header {name}", found)

        if resp_body.strip():
            try:
                actual = json.loads(raw)
            except ValueError:
                raise Failure(f"the body is not JSON: {body_text[:300]!r}")
            tmpl = response_template(resp_body)
            extras = []
            error_body = isinstance(tmpl, dict) and "code" in tmpl and "message" in tmpl
            match_json(tmpl, actual, "body", found, extras, error_body)
            for where, value in extras:
                # "A member shown for one state is absent, not null, in the
                # others. The broker may add members: ignore those you do not know."
                if value is None:
                    raise Failure(f"{where} is null; the doc says members are absent, not null")
                if where.count(".") == 1 and where.split(".", 1)[1] in self.world["shown_members"]:
                    raise Failure(f"{where} is there; the doc shows that member for another state only, and says it is absent in the others")
                self.world["notes"].append(f"{label}: {where} is not in the doc (the doc allows added members)")
        elif raw.strip():
            self.world["notes"].append(f"{label}: a body the doc does not show: {body_text[:100]!r}")

        self.resolve(found, scope, {"sent_at": int(sent_at), "received_at": int(received_at) + 1})

    def resolve(self, found, scope, ctx):
        """A name already defined must have that value; one the prose computes
        is computed and must match; any other is captured."""
        computed = []
        for name, value in found.items():
            if name in scope.values:
                if scope.values[name] != value:
                    raise Failure(f"{{{{{name}}}}} is {value!r}; it was defined as {scope.values[name]!r}")
            elif scope.has_rule(name):
                computed.append((name, value))
            else:
                scope.values[name] = value
        for name, value in computed:
            want = scope.get(name)
            if want != value:
                raise Failure(f"{{{{{name}}}}} is {value!r}; the prose makes it {want!r}")
        for name in found:
            if name in CHECKS:
                CHECKS[name](scope, found[name], ctx)

    def send(self, host, port, method, target, headers, body, timeout):
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            # Exactly the doc's headers, in its order; http.client adds no Host
            # or Accept-Encoding here, and never an Origin.
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            data = body.encode("utf-8")
            if data or method in ("POST", "PUT"):
                conn.putheader("Content-Length", str(len(data)))
            conn.endheaders(data if data else None)
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, resp.reason, resp.getheaders(), raw
        except OSError as e:
            raise Failure(f"{method} {target} to {host}:{port}: {e}")
        finally:
            conn.close()

    def log(self, label, method, target, headers, body, status, reason, got_headers, raw):
        t = self.transcript
        t.write(f"### {label}\n{method} {target} HTTP/1.1\n")
        for n, v in headers:
            t.write(f"{n}: {v}\n")
        t.write(f"\n{body}\n\nHTTP/1.1 {status} {reason}\n")
        for n, v in got_headers:
            t.write(f"{n}: {v}\n")
        t.write("\n" + raw.decode("utf-8", errors="replace") + "\n\n")
        t.flush()


# --------------------------------------------------------------------------


def self_checks(text):
    """The section's own check values: the thumbprint of RFC 8037 A.3, and
    the chain hash of tests/vectors/valid-depth-2.json."""
    m = re.search(r"Check: `x` =\s*`([A-Za-z0-9_-]+)` gives\s*`([A-Za-z0-9_-]+)`", text)
    if not m:
        raise Failure("doc: step 1's thumbprint check value is gone")
    if thumbprint(m.group(1)) != m.group(2):
        raise Failure(f"doc: the thumbprint of {m.group(1)} is {thumbprint(m.group(1))}, not {m.group(2)}")
    print("ok   step 1's thumbprint check value", flush=True)
    m = re.search(r"Check your code against\s+`([^`]+)`: its `chain`\s+hashes to `([A-Za-z0-9_-]+)`", text)
    if not m:
        raise Failure("doc: the chain hash check value is gone")
    vector = json.load(open(os.path.join(REPO, m.group(1)), encoding="utf-8"))
    got = chain_hash(vector["chain"])
    if got != m.group(2):
        raise Failure(f"doc: the chain of {m.group(1)} hashes to {got}, not {m.group(2)}")
    # "the `ath` of its `pop`"
    if decode_token(vector["pop"]["token"])[1].get("ath") != got:
        raise Failure(f"doc: {got} is not the `ath` of the vector's pop")
    print("ok   the chain hash check value", flush=True)
    return 2


def main():
    lines, start = read_section(DOC)
    exchanges, templates, proofs, text = parse_section(lines, start)
    if not exchanges:
        raise Failure(f"{DOC}: the section has no exchanges")
    names = [e["name"] for e in exchanges]
    for name in list(USER_STEPS) + [FILE_EXCHANGE]:
        if name not in names:
            raise Failure(f"the harness plays the user at exchange `{name}`, which the section no longer has ({names})")
    by_name = {e["name"]: e for e in exchanges}
    shown = set()
    for e in exchanges:
        body = parse_http(e["response"], "response")[2]
        if body.strip():
            tmpl = response_template(body)
            if isinstance(tmpl, dict):
                shown |= set(tmpl)
    print(f"{DOC}: {len(exchanges)} exchanges, {len(templates)} tokens, single-use proofs {proofs}", flush=True)
    checks = self_checks(text)

    tmp = tempfile.mkdtemp(prefix="walkthrough.")
    stack = Stack(tmp)
    atexit.register(stack.stop)
    def on_term(*_):
        raise Failure("stopped by SIGTERM (run.sh's timeout?)")

    signal.signal(signal.SIGTERM, on_term)
    ok = False
    walk = None
    try:
        node = ["node", os.path.join(REPO, "tests", "idp", "server.mjs"), "--port", "0"]
        idp = stack.start("idp", node)
        issuer = stack.wait_line("idp", idp, r"^issuer (http://127\.0\.0\.1:\d+)\s*$").group(1)

        broker = stack.start("broker", [
            binary("mandate-broker"), "--listen", "127.0.0.1:0",
            "--data-dir", os.path.join(tmp, "broker-data"),
            "--issuer", f"{issuer}=mandate-desktop",
        ])
        broker_url = stack.wait_line("broker", broker, r"listening on (http://[0-9.]+:\d+)").group(1)

        resource = stack.start("resource", [
            binary("mandate-resource-example"), "--listen", "127.0.0.1:0", "--broker", broker_url,
        ])
        resource_origin = stack.wait_line("resource", resource, r"^mandate-resource-example listening on (http://[0-9.]+:\d+)").group(1)

        user = User(stack, issuer, broker_url)
        user.signin()
        status = json.loads(user.run("status"))
        print(f"     stack up: provider {issuer}, broker {broker_url}, resource {resource_origin}; signed in: {json.dumps(status)[:120]}", flush=True)

        def hostport(url):
            u = urllib.parse.urlsplit(url)
            return (u.hostname, u.port)

        world = {
            "templates": templates,
            "proofs": proofs,
            "sent": {},
            "notes": [],
            "shown_members": shown,
            "issuer": issuer,
            "connect": {"broker_url": hostport(broker_url), "resource_origin": hostport(resource_origin)},
        }
        main_scope = Scope(world)
        world["main"] = main_scope
        # The harness's facts: where the servers are, and who the user is.
        main_scope.values["broker_url"] = broker_url  # step 0: `--public-url`, by default http:// and the listen address
        main_scope.values["resource_origin"] = resource_origin  # step 5: http:// and the address it listens on
        main_scope.values["resource_host"] = urllib.parse.urlsplit(resource_origin).netloc  # "its host and port"
        main_scope.values["principal"] = f"{issuer}#{USER}"  # step 2: ISSUER#SUBJECT
        # "The user can read their principal in the Mandate app": the engine's status.
        if status.get("principal") != main_scope.values["principal"]:
            raise Failure(f"the app's principal is {status.get('principal')!r}, not ISSUER#SUBJECT {main_scope.values['principal']!r}")

        walk = Walk(world, stack)
        walk.passed = checks
        before_filing = None
        filed = {}  # requests filed ahead of their exchange, by its name

        def file_request(name, step):
            """Files, by the doc's `submit`, a request other than the main
            one, for exchange `name`: one to deny, or one to lapse (with a
            short `exp`)."""
            overrides = {}
            if step == "lapse":
                overrides["request_exp"] = lambda s: s.get("request_iat") + LAPSE_SECONDS
            scope = Scope(world, before_filing.values, main_scope.keys, overrides, label=f"a request to {step}")
            walk.exchange(by_name[FILE_EXCHANGE], scope, f"exchange `{FILE_EXCHANGE}` for `{name}`")
            return scope

        for ex in exchanges:
            name = ex["name"]
            if name == FILE_EXCHANGE and before_filing is None:
                before_filing = main_scope.fork("main")
            step = USER_STEPS.get(name)
            if step == "approve":
                user.approve(main_scope.get("request_id"))
                print(f"     user: approved {main_scope.get('request_id')}", flush=True)
                walk.exchange(ex, main_scope)
            elif step in ("deny", "lapse"):
                if before_filing is None:
                    raise Failure(f"exchange `{name}` comes before `{FILE_EXCHANGE}`")
                if step == "deny":
                    # The requests to lapse are filed before any denial: the
                    # broker holds back the same scopes from the same agent
                    # for a while after one (`request.cooldown`, in the doc's
                    # table of errors), and the doc's requests all ask the
                    # same scopes.
                    for later in exchanges[exchanges.index(ex) + 1:]:
                        if USER_STEPS.get(later["name"]) == "lapse" and later["name"] not in filed:
                            filed[later["name"]] = file_request(later["name"], "lapse")
                scope = filed.pop(name, None) or file_request(name, step)
                if step == "deny":
                    user.deny(scope.get("request_id"), DENY_REASON)
                    print(f"     user: denied {scope.get('request_id')}", flush=True)
                else:
                    until = scope.get("request_expires_at") + 1
                    print(f"     user: lets {scope.get('request_id')} lapse ({max(0, until - now())} s)", flush=True)
                    while now() <= until:
                        time.sleep(0.2)
                walk.exchange(ex, scope)
            else:
                walk.exchange(ex, main_scope)
        for note in world["notes"]:
            print(f"note {note}")
        print(f"walkthrough: {walk.passed} passed, 0 failed")
        ok = True
    except Failure as e:
        print(f"FAIL {e}", file=sys.stderr)
        print(f"     logs and transcript: {tmp}", file=sys.stderr)
        print(f"walkthrough: {walk.passed if walk else checks} passed, 1 failed")
    finally:
        stack.stop()
        if ok and not os.environ.get("WALKTHROUGH_KEEP"):
            subprocess.run(["rm", "-rf", tmp])
        elif ok:
            print(f"     logs and transcript: {tmp}")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as e:
        print(f"FAIL {e}", file=sys.stderr)
        print("walkthrough: 0 passed, 1 failed")
        sys.exit(1)
