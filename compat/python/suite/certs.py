"""Test credentials made with the openssl command: a CA, a server certificate for
localhost/127.0.0.1 (and a cluster node's, which is a client certificate too), client
certificates (one from a CA the server does not trust), and RS256
JWTs with a JWKS holding their public key."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def _openssl(*args: str, input: bytes | None = None) -> bytes:
    done = subprocess.run(["openssl", *args], input=input, capture_output=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {done.stderr.decode()}")
    return done.stdout


def _ca(dir: Path, name: str) -> tuple[Path, Path]:
    key, pem = dir / f"{name}.key", dir / f"{name}.pem"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(key), "-out", str(pem), "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return key, pem


def _leaf(dir: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    key, csr, pem, ext = dir / f"{name}.key", dir / f"{name}.csr", dir / f"{name}.pem", dir / f"{name}.ext"
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    ext.write_text(extensions)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[1]), "-CAkey", str(ca[0]), "-CAcreateserial",
             "-out", str(pem), "-days", "2", "-extfile", str(ext))
    return pem, key


@dataclass
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path
    rogue_key: Path
    node_cert: Path
    node_key: Path


def make_certs(dir: Path) -> Certs:
    ca = _ca(dir, "test-ca")
    rogue_ca = _ca(dir, "rogue-ca")
    server = _leaf(dir, "server", ca,
                   "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    client = _leaf(dir, "client", ca, "extendedKeyUsage=clientAuth\n")
    rogue = _leaf(dir, "rogue", rogue_ca, "extendedKeyUsage=clientAuth\n")
    node = _leaf(dir, "node", ca,
                 "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    return Certs(ca[1], server[0], server[1], client[0], client[1], rogue[0], rogue[1], node[0], node[1])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Signer:
    """An RSA key that signs RS256 JWTs, and the JWKS that holds its public half."""
    key: Path
    kid: str

    @staticmethod
    def create(dir: Path, kid: str) -> "Signer":
        key = dir / f"{kid}.rsa"
        _openssl("genrsa", "-out", str(key), "2048")
        return Signer(key, kid)

    def jwk(self) -> dict:
        modulus = _openssl("rsa", "-in", str(self.key), "-noout", "-modulus").decode().strip().split("=", 1)[1]
        return {"kty": "RSA", "kid": self.kid, "alg": "RS256", "use": "sig",
                "n": _b64(bytes.fromhex(modulus)), "e": "AQAB"}

    def token(self, permissions: list[str], *, expires_in: float = 3600, subject: str = "tester") -> str:
        header = _b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": self.kid}).encode())
        now = int(time.time())
        claims = {"sub": subject, "permissions": permissions, "iat": now, "exp": now + int(expires_in)}
        body = _b64(json.dumps(claims).encode())
        signature = _openssl("dgst", "-sha256", "-sign", str(self.key), input=f"{header}.{body}".encode())
        return f"{header}.{body}.{_b64(signature)}"


def write_jwks(path: Path, *signers: Signer) -> Path:
    path.write_text(json.dumps({"keys": [s.jwk() for s in signers]}))
    return path
