"""Container images for the tests, built without Docker, and a real registry to serve them.

`Registry` starts Debian's `docker-registry` (the CNCF distribution registry) on a free port with
its own temporary config and storage. `ImageBuilder` writes layers (tar.gz), the image config and
the manifest (and an image index for multi-arch) and pushes them with the registry's HTTP API
(OCI distribution spec: monolithic blob upload, manifest PUT). Image contents come from the host:
a program and the shared libraries `ldd` lists for it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple, Union

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

# AWS's /lambda-entrypoint.sh, byte for byte as in public.ecr.aws/lambda/provided (and python,
# nodejs): the handler is its one argument; it runs the runtime interface emulator only when
# AWS_LAMBDA_RUNTIME_API is unset (outside Lambda), else /var/runtime/bootstrap.
LAMBDA_ENTRYPOINT = """#!/bin/sh
# Copyright 2020 Amazon.com, Inc. or its affiliates. All Rights Reserved.

if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" 1>&2
  exit 142
fi
export _HANDLER="$1"

RUNTIME_ENTRYPOINT=/var/runtime/bootstrap
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ]; then
  exec /usr/local/bin/aws-lambda-rie $RUNTIME_ENTRYPOINT
else
  exec $RUNTIME_ENTRYPOINT
fi
"""

# The environment AWS's base images set (docker inspect public.ecr.aws/lambda/provided:al2023).
AWS_BASE_ENV = [
    "LANG=en_US.UTF-8",
    "TZ=:/etc/localtime",
    "PATH=/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
    "LD_LIBRARY_PATH=/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
    "LAMBDA_TASK_ROOT=/var/task",
    "LAMBDA_RUNTIME_DIR=/var/runtime",
]


@dataclass
class Entry:
    """One tar entry: a file (data), a dir, a symlink or hard link (link), or a raw name."""
    path: str
    data: bytes = b""
    mode: int = 0o644
    kind: bytes = tarfile.REGTYPE
    link: str = ""


def file(path: str, data: Union[str, bytes], mode: int = 0o644) -> Entry:
    return Entry(path, data.encode() if isinstance(data, str) else data, mode)


def directory(path: str, mode: int = 0o755) -> Entry:
    return Entry(path, mode=mode, kind=tarfile.DIRTYPE)


def symlink(path: str, to: str) -> Entry:
    return Entry(path, mode=0o777, kind=tarfile.SYMTYPE, link=to)


def hardlink(path: str, to: str) -> Entry:
    return Entry(path, kind=tarfile.LNKTYPE, link=to)


def layer(entries: Iterable[Entry]) -> bytes:
    """A gzip'd tar of `entries`, in order, names as given (even `../x`: tests need bad ones)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.path)
            info.mode = e.mode
            info.type = e.kind
            info.mtime = 0
            if e.kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = e.link
            if e.kind == tarfile.REGTYPE:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    return gzip.compress(raw.getvalue(), mtime=0)


def host_program(host_path: str, at: Optional[str] = None) -> List[Entry]:
    """`host_path` (at `at` in the image) with the shared libraries it loads, at the paths the
    dynamic linker looks them up (a provided.al2023-shaped image brings its own libc too)."""
    entries = [file(at or host_path.lstrip("/"), Path(host_path).read_bytes(), 0o755)]
    out = subprocess.run(["ldd", host_path], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux... (0x...)"
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if path.startswith("/"):
            entries.append(file(path.lstrip("/"), Path(path).read_bytes(), 0o755))
    return entries


def host_tree(host_dir: str, at: str, skip: Iterable[str] = ()) -> List[Entry]:
    """The files under `host_dir` (symlinks followed), at `at` in the image; directories named in
    `skip` and `__pycache__` left out."""
    skipped = set(skip) | {"__pycache__"}
    entries = []
    for path in sorted(Path(host_dir).rglob("*")):
        rel = path.relative_to(host_dir)
        if skipped & set(rel.parts) or not path.is_file():
            continue
        entries.append(file(f"{at.strip('/')}/{rel}", path.read_bytes(),
                            path.stat().st_mode & 0o777))
    return entries


def shared_libraries(host_paths: Iterable[str]) -> List[Entry]:
    """The shared libraries `ldd` lists for each of `host_paths`, once each."""
    seen, entries = set(), []
    for host_path in host_paths:
        for entry in host_program(host_path)[1:]:
            if entry.path not in seen:
                seen.add(entry.path)
                entries.append(entry)
    return entries


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class TokenServer:
    """The bearer-token flow of Docker Hub, GHCR, ECR…: a registry answering 401 with
    `WWW-Authenticate: Bearer realm=…,service=…` and this server issuing JWTs (RS256, the
    certificate in `x5c`) to clients presenting the right basic credentials at the realm."""

    def __init__(self, workdir: Path, port: int, credentials: Tuple[str, str]):
        import datetime
        import http.server
        import threading

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.credentials = credentials
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flint-tests-token")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .sign(self.key, hashes.SHA256()))
        self.cert_path = workdir / "token-cert.pem"
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.realm = f"http://127.0.0.1:{port}/token"
        self.issued = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                import base64
                import urllib.parse
                expected = base64.b64encode(":".join(server.credentials).encode()).decode()
                if self.headers.get("Authorization") != f"Basic {expected}":
                    self.send_response(401)
                    self.end_headers()
                    return
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                token = server.token(query.get("scope", [""])[0])
                body = json.dumps({"token": token, "access_token": token,
                                   "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def token(self, scope: str) -> str:
        """A JWT granting `scope` (`repository:NAME:pull[,push]`)."""
        import base64

        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        access = []
        if scope.count(":") >= 2:
            kind, name, actions = scope.split(":", 2)
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(
            self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        claims = {"iss": "flint-tests", "sub": self.credentials[0], "aud": "flint-registry",
                  "exp": now + 300, "nbf": now - 10, "iat": now, "jti": str(now) + scope,
                  "access": access}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        self.issued += 1
        return f"{signing_input}.{b64(signature)}"

    def registry_auth_config(self) -> str:
        return ("auth:\n  token:\n"
                f"    realm: {self.realm}\n    service: flint-registry\n"
                f"    issuer: flint-tests\n    rootcertbundle: {self.cert_path}\n")

    def stop(self):
        self.httpd.shutdown()


class Registry:
    """A `docker-registry` of our own on 127.0.0.1 (plain http, as Docker treats loopback)."""

    def __init__(self, workdir: Path, port: int, credentials: Optional[Tuple[str, str]] = None,
                 token_server: Optional[TokenServer] = None):
        """`credentials`: (user, password) the registry requires: HTTP basic auth (htpasswd),
        or, with `token_server`, exchanged there for a bearer token."""
        self.port = port
        self.host = f"127.0.0.1:{port}"
        self.url = f"http://{self.host}"
        self.credentials = credentials
        self.token_server = token_server
        workdir.mkdir(parents=True, exist_ok=True)
        auth = ""
        if token_server:
            auth = token_server.registry_auth_config()
        elif credentials:
            import warnings
            with warnings.catch_warnings():
                # bcrypt through Debian's libxcrypt, what htpasswd files hold; Python 3.11's
                # crypt module is deprecated (no bcrypt package needed for the suite).
                warnings.simplefilter("ignore", DeprecationWarning)
                import crypt
            user, password = credentials
            htpasswd = workdir / "htpasswd"
            htpasswd.write_text(
                f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))}\n")
            auth = f"auth:\n  htpasswd:\n    realm: flint-tests\n    path: {htpasswd}\n"
        config = workdir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'storage'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n" + auth)
        binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
        self.log = open(workdir / "registry.log", "wb")
        self.proc = subprocess.Popen([binary, "serve", str(config)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            try:
                with self._request("GET", "/v2/") as r:
                    if r.status == 200:
                        return
            except urllib.error.HTTPError:
                raise
            except (urllib.error.URLError, ConnectionError):
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"docker-registry did not start: "
                                   f"{(workdir / 'registry.log').read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    def _request(self, method: str, url: str, data: Optional[bytes] = None,
                 headers: Optional[Dict[str, str]] = None):
        headers = dict(headers or {})
        if self.token_server:
            repo = url.split("/v2/", 1)[-1].split("/", 1)[0] if "/v2/" in url else ""
            scope = f"repository:{repo}:pull,push" if repo else ""
            headers["Authorization"] = f"Bearer {self.token_server.token(scope)}"
        elif self.credentials:
            import base64
            token = base64.b64encode(":".join(self.credentials).encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        req = urllib.request.Request(url if url.startswith("http") else self.url + url,
                                     data=data, method=method, headers=headers)
        return urllib.request.urlopen(req, timeout=30)

    def docker_config(self, directory: Path) -> Path:
        """A Docker client config (`DOCKER_CONFIG` dir) holding this registry's credentials, as
        `docker login` writes it."""
        import base64
        directory.mkdir(parents=True, exist_ok=True)
        auth = base64.b64encode(":".join(self.credentials or ("", "")).encode()).decode()
        (directory / "config.json").write_text(json.dumps({"auths": {self.host: {"auth": auth}}}))
        return directory

    def delete_blob(self, repo: str, blob_digest: str):
        with self._request("DELETE", f"/v2/{repo}/blobs/{blob_digest}"):
            pass

    def push_blob(self, repo: str, data: bytes) -> str:
        d = digest(data)
        with self._request("POST", f"/v2/{repo}/blobs/uploads/") as r:
            location = r.headers["Location"]
        sep = "&" if "?" in location else "?"
        with self._request("PUT", f"{location}{sep}digest={d}", data,
                           {"Content-Type": "application/octet-stream"}):
            pass
        return d

    def push_manifest(self, repo: str, reference: str, manifest: dict, media_type: str) -> str:
        body = json.dumps(manifest).encode()
        with self._request("PUT", f"/v2/{repo}/manifests/{reference}", body,
                           {"Content-Type": media_type}):
            pass
        return digest(body)

    def delete_manifest(self, repo: str, manifest_digest: str):
        with self._request("DELETE", f"/v2/{repo}/manifests/{manifest_digest}"):
            pass

    def push_image(self, repo: str, tag: Optional[str], layers: List[bytes], *,
                   entrypoint: Optional[List[str]] = None, cmd: Optional[List[str]] = None,
                   working_dir: str = "", env: Optional[List[str]] = None,
                   architecture: str = "amd64") -> Tuple[str, int]:
        """Pushes one image; returns (manifest digest, manifest size)."""
        config = {
            "architecture": architecture,
            "os": "linux",
            "config": {k: v for k, v in {
                "Entrypoint": entrypoint, "Cmd": cmd, "WorkingDir": working_dir or None,
                "Env": env}.items() if v is not None},
            "rootfs": {"type": "layers",
                       "diff_ids": [digest(gzip.decompress(l)) for l in layers]},
        }
        config_bytes = json.dumps(config).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": self.push_blob(repo, config_bytes),
                       "size": len(config_bytes)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": self.push_blob(repo, l),
                        "size": len(l)} for l in layers],
        }
        body = json.dumps(manifest).encode()
        d = self.push_manifest(repo, tag or digest(body), manifest, OCI_MANIFEST)
        return d, len(body)

    def push_index(self, repo: str, tag: str, images: List[Tuple[str, int, str]]) -> str:
        """An image index of (manifest digest, size, architecture) entries."""
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": d, "size": size,
                           "platform": {"architecture": arch, "os": "linux"}}
                          for d, size, arch in images],
        }
        return self.push_manifest(repo, tag, index, OCI_INDEX)
