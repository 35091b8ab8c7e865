#!/usr/bin/env python3
"""A resource server that knows nothing of Mandate takes the broker's
access tokens (docs/oauth.md, "Checking a token at a resource server").

The server below uses PyJWT and the standard library only, and its check
is the ```python oauth-check block of docs/oauth.md, read out of the doc
and run as it is: it checks the token against the broker's published keys
and metadata, the DPoP proof (RFC 9449) against the token's `cnf.jkt`, and
asks the broker's introspection whether the token is still active.

The test around it runs the real processes: the test OIDC provider,
mandate-broker (with `--oauth-resource` naming this server), the user
(mandate-engine, signed in through the provider's pages), and an agent
(the `mandate` CLI). The agent's mandate is exchanged at `/oauth/token`
for a DPoP-bound token, and the server:

- accepts it with a fresh proof by the agent's key;
- refuses it without a proof, with another key's proof, and with a
  replayed proof;
- refuses a token past its `exp` (a grant of 4 seconds);
- refuses it once the user revokes everything (`mandate-engine
  revoke-all`), through introspection.
"""

import base64
import hashlib
import http.client
import http.server
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ["OAUTH_TEST_BIN"]
CHECKS = []


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def check(what, ok, detail=""):
    CHECKS.append(what)
    if not ok:
        raise AssertionError(f"{what}: {detail}")
    print(f"ok   {what}", flush=True)


# --------------------------------------------------------------------------
# The resource server: PyJWT and the standard library, no Mandate code.


def doc_block():
    """The resource server's check, as docs/oauth.md gives it: the block
    after ```python oauth-check, run here as it is."""
    text = open(os.path.join(REPO, "docs", "oauth.md"), encoding="utf-8").read()
    m = re.search(r"^```python oauth-check\n(.*?)^```$", text, re.S | re.M)
    if not m:
        raise AssertionError("docs/oauth.md has no ```python oauth-check block")
    scope = {}
    exec(compile(m.group(1), "docs/oauth.md (oauth-check)", "exec"), scope)
    return scope


DOC = doc_block()


class ResourceServer(http.server.BaseHTTPRequestHandler):
    """A file server whose every call passes the doc's check_call."""

    # Set once the broker is known.
    broker = None
    resource = None
    seen_jti = set()

    def log_message(self, *args):
        pass

    def reply(self, status, body, extra=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        headers = {}
        for k, v in self.headers.items():
            headers.setdefault(k.lower(), []).append(v)
        url = f"http://{self.headers['Host']}{urllib.parse.urlsplit(self.path).path}"
        try:
            claims = DOC["check_call"](
                "GET", url, headers, ResourceServer.resource,
                ResourceServer.broker["metadata"], ResourceServer.broker["jwks"],
                ResourceServer.seen_jti)
        except DOC["Refused"] as e:
            return self.reply(401, {"error": "invalid_token", "error_description": str(e)},
                              [("WWW-Authenticate", 'DPoP error="invalid_token", algs="EdDSA"')])
        if not any(d.get("type") == "files" and "read" in d.get("actions", [])
                   for d in claims.get("authorization_details", [])):
            return self.reply(403, {"error": "insufficient_scope"})
        self.reply(200, {"file": self.path, "user": claims["sub"], "agent": claims["client_id"]})


# --------------------------------------------------------------------------
# The test around it.


class Procs:
    def __init__(self, tmp):
        self.tmp, self.procs = tmp, []

    def start(self, name, argv, env=None, wait_for=None, timeout=30):
        out = open(os.path.join(self.tmp, name + ".out"), "wb")
        err = open(os.path.join(self.tmp, name + ".err"), "wb")
        p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=self.tmp)
        self.procs.append(p)
        if wait_for is None:
            return p, None
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = open(os.path.join(self.tmp, name + ".out"), errors="replace").read()
            m = re.search(wait_for, text)
            if m:
                return p, m
            if p.poll() is not None:
                break
            time.sleep(0.05)
        err_text = open(os.path.join(self.tmp, name + ".err"), errors="replace").read()[-2000:]
        raise AssertionError(f"{name} did not print /{wait_for}/: {err_text}")

    def run(self, argv, env=None, timeout=60):
        r = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=self.tmp,
                           stdin=subprocess.DEVNULL, timeout=timeout)
        if r.returncode != 0:
            raise AssertionError(f"{os.path.basename(argv[0])} {argv[-1]}: {r.stderr.strip()}")
        return r.stdout

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


def dpop(seed: bytes, method: str, url: str, token=None) -> str:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    x = b64(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    claims = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url, "iat": int(time.time())}
    if token is not None:
        claims["ath"] = b64(hashlib.sha256(token.encode()).digest())
    return jwt.encode(claims, key, algorithm="EdDSA",
                      headers={"typ": "dpop+jwt", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": x}})


def es256_dpop(method: str, url: str, token: str, jwk_of=None) -> str:
    """A proof by a fresh P-256 key, as OAuth clients make them; `jwk_of`
    replaces the header's key."""
    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": "P-256",
           "x": b64(numbers.x.to_bytes(32, "big")), "y": b64(numbers.y.to_bytes(32, "big"))}
    claims = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url, "iat": int(time.time()),
              "ath": b64(hashlib.sha256(token.encode()).digest())}
    return jwt.encode(claims, key, algorithm="ES256",
                      headers={"typ": "dpop+jwt", "jwk": jwk_of or jwk})


def call(url, token=None, proof=None, proofs=None):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    headers = {}
    if token:
        headers["Authorization"] = f"DPoP {token}"
    c.putrequest("GET", u.path)
    for k, v in headers.items():
        c.putheader(k, v)
    for p in (proofs or ([proof] if proof else [])):
        c.putheader("DPoP", p)
    c.endheaders()
    r = c.getresponse()
    body = json.loads(r.read() or b"null")
    c.close()
    return r.status, body


def main():
    tmp = tempfile.mkdtemp(prefix="oauth-rs-")
    procs = Procs(tmp)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ResourceServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    resource = f"http://127.0.0.1:{server.server_address[1]}/"
    ResourceServer.resource = resource
    try:
        _, m = procs.start("idp", ["node", os.path.join(REPO, "tests/idp/server.mjs"), "--port", "0"],
                           wait_for=r"issuer (\S+)")
        issuer = m.group(1)
        _, m = procs.start("broker", [
            os.path.join(BIN, "mandate-broker"), "--listen", "127.0.0.1:0",
            "--data-dir", os.path.join(tmp, "broker"), "--issuer", f"{issuer}=mandate-desktop",
            "--oauth-resource", resource,
        ], wait_for=r"listening on (\S+)")
        broker = m.group(1)
        with urllib.request.urlopen(f"{broker}/.well-known/oauth-authorization-server", timeout=10) as r:
            metadata = json.loads(r.read())
        check("the metadata names the resource and its algorithm",
              metadata["mandate_resources"] == {resource: "EdDSA"}, metadata)
        ResourceServer.broker = {"metadata": metadata, "jwks": jwt.PyJWKClient(metadata["jwks_uri"])}

        env = dict(os.environ, MANDATE_BROKER=broker)
        engine = [os.path.join(BIN, "mandate-engine"), "--issuer", issuer, "--broker", broker,
                  "--data-dir", os.path.join(tmp, "engine"), "--keyring-service", f"oauth-rs-{os.getpid()}"]
        procs.run(engine + ["signin"], env=dict(env, MANDATE_BROWSER=f"node {REPO}/tests/idp/browse.mjs --user alice"))
        principal = f"{issuer}#alice"
        mandate = os.path.join(BIN, "mandate")
        key_file = os.path.join(tmp, "agent.key")
        procs.run([mandate, "agent", "init", "--key", key_file], env=env)
        seed = base64.urlsafe_b64decode(open(key_file).read().strip() + "==")

        def approved(name, *narrowing):
            """An agent request, approved by the user; the agent's mandate."""
            out = os.path.join(tmp, f"{name}.json")
            waiting, _ = procs.start(name, [
                mandate, "agent", "request", "--key", key_file, "--principal", principal,
                "--scope", f"files:read:{resource}files/", "--purpose", "Read the files",
                "--wait", "--timeout", "60", "--out", out,
            ], env=env)
            deadline = time.time() + 30
            while True:
                inbox = json.loads(procs.run(engine + ["inbox"], env=env))
                if inbox:
                    break
                assert time.time() < deadline, "the request never reached the inbox"
                time.sleep(0.3)
            procs.run(engine + ["approve", *narrowing, "--", inbox[0]["id"]], env=env)
            assert waiting.wait(timeout=60) == 0, open(os.path.join(tmp, name + ".err")).read()
            return json.load(open(out))

        def exchange(m):
            form = urllib.parse.urlencode({
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "subject_token": ",".join(m["chain"]),
                "subject_token_type": "urn:mandate:params:oauth:token-type:chain",
                "resource": resource,
            }).encode()
            req = urllib.request.Request(metadata["token_endpoint"], data=form, headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "DPoP": dpop(seed, "POST", metadata["token_endpoint"]),
            })
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read())

        url = f"{resource}files/q3.txt"
        issued = exchange(approved("first"))
        token = issued["access_token"]
        check("the exchange answers a DPoP token", issued["token_type"] == "DPoP", issued)
        status, body = call(url, token, dpop(seed, "GET", url, token))
        check("the server accepts the token with a fresh proof",
              status == 200 and body["user"] == principal, (status, body))
        status, body = call(url, token)
        check("no proof: refused", status == 401, (status, body))
        other = secrets.token_bytes(32)
        status, body = call(url, token, dpop(other, "GET", url, token))
        check("another key's proof: refused", status == 401 and "another key" in body["error_description"], body)
        status, body = call(url, token, es256_dpop("GET", url, token))
        check("another key's ES256 proof: refused", status == 401 and "another key" in body["error_description"], body)
        agent_jwk = json.loads(base64.urlsafe_b64decode(dpop(seed, "GET", url).split(".")[0] + "==")).get("jwk")
        status, body = call(url, token, es256_dpop("GET", url, token, jwk_of=agent_jwk))
        check("an ES256 proof naming the agent's Ed25519 key: refused",
              status == 401 and "not of its algorithm" in body["error_description"], body)
        proof = dpop(seed, "GET", url, token)
        assert call(url, token, proof)[0] == 200
        status, body = call(url, token, proof)
        check("a replayed proof: refused", status == 401 and "used before" in body["error_description"], body)
        status, body = call(url, token, dpop(seed, "GET", url, "another token"))
        check("a proof for another token: refused", status == 401, body)

        # A grant of 4 seconds: its token ends with it.
        short = exchange(approved("short", "--lifetime", "4"))
        check("the token never outlives its chain", short["expires_in"] <= 4, short)
        assert call(url, short["access_token"], dpop(seed, "GET", url, short["access_token"]))[0] == 200
        time.sleep(short["expires_in"] + 1.5)
        status, body = call(url, short["access_token"], dpop(seed, "GET", url, short["access_token"]))
        check("after its exp: refused", status == 401 and "Expired" in body["error_description"], body)

        # The user revokes everything: introspection says so at once.
        procs.run(engine + ["revoke-all"], env=env)
        status, body = call(url, token, dpop(seed, "GET", url, token))
        check("after the user revokes: refused", status == 401 and "no longer active" in body["error_description"], body)
    finally:
        server.shutdown()
        procs.stop()
    print(f"oauth-rs: {len(CHECKS)} passed, 0 failed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL {e}", file=sys.stderr)
        print(f"oauth-rs: {len(CHECKS)} passed, 1 failed")
        sys.exit(1)
