"""Image archives (`docker save`) pushed into a Docker distribution registry, from the controller.

Hosts then pull an image by its manifest digest instead of receiving the archive through the Ansible
connection, so a site's hosts get the bytes from one registry (layers in parallel, each layer once per host)
and a tag moved in the registry can never change what a host runs. Nothing here needs Docker on the
controller: the archive is read as the tar it is, and its layers are sent as they are stored in it
(uncompressed tar: their digests are the image's diff IDs, so the manifest is known without reading the layers).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import posixpath
import ssl
import tarfile
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from solv_provision import addresses, specs

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
_CHUNK = 1 << 20


class RegistryError(Exception):
    """The archive cannot be read, or the registry refused or could not be reached (the message says which)."""


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    member: str  # the archive member manifest.json names (what `docker load` opens)
    source: str  # the regular member holding its bytes: `member`, or what that link leads to


@dataclass(frozen=True)
class ArchiveImage:
    """One image of an archive, as a registry manifest would describe it."""

    repo_tags: tuple[str, ...]
    config: bytes
    layers: tuple[Blob, ...]

    @property
    def image_id(self) -> str:
        return _sha256(self.config)

    def manifest(self) -> bytes:
        """The OCI manifest (canonical JSON, so its digest is the same on every run)."""
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": self.image_id, "size": len(self.config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": b.digest, "size": b.size} for b in self.layers],
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @property
    def manifest_digest(self) -> str:
        return _sha256(self.manifest())


def site_address(hostvars: Mapping[str, Any], groups: Mapping[str, Any]) -> str:
    """`address:port` of the site registry (the `registry` group's host, role registry), else of the registry
    serving an offline bundle from the controller (solv_bundle_registry, set by `apply --bundle`), or "".
    The one rule the roles (solv_common's image path, container_engine's daemon.json) and the validator use."""
    hosts = list(groups.get("registry") or [])
    if not hosts:
        first = next(iter(groups.get("all") or []), None)
        return str(hostvars[first].get("solv_bundle_registry") or "") if first is not None else ""
    own = hostvars[hosts[0]]
    port = own.get("registry_port", specs.role_specs()["registry"].defaults["registry_port"])
    return f"{addresses.bracketed(addresses.host_address(own, hosts[0]))}:{port}"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def read_archive(path: str, image: str) -> ArchiveImage:
    """The image `name:tag` of the archive at `path` (`docker save`, legacy or OCI layout: both carry
    manifest.json). Reads the index and the config only."""
    try:
        with tarfile.open(path, "r:") as tar:
            members = {m.name.removeprefix("./"): m for m in tar.getmembers()}
            entries = json.loads(_member_bytes(tar, members, "manifest.json", path))
            entry = next((e for e in entries if image in (e.get("RepoTags") or [])), None)
            if entry is None:
                held = sorted(t for e in entries for t in (e.get("RepoTags") or []))
                raise RegistryError(f"{path}: holds no image {image} (it holds: {', '.join(held) or 'none'})")
            config = _member_bytes(tar, members, entry["Config"], path)
            diff_ids = json.loads(config)["rootfs"]["diff_ids"]
            if len(diff_ids) != len(entry["Layers"]):
                raise RegistryError(f"{path}: {image} lists {len(entry['Layers'])} layers for {len(diff_ids)} diff IDs")
            layers = []
            for name, digest in zip(entry["Layers"], diff_ids):
                source = _regular(members, name)
                if source is None:
                    raise RegistryError(f"{path}: layer {name} of {image} is missing")
                layers.append(Blob(digest, source.size, name, source.name))
    except (OSError, tarfile.TarError, ValueError, KeyError, TypeError) as exc:
        raise RegistryError(f"{path}: not a readable image archive ({exc})") from exc
    return ArchiveImage(tuple(entry["RepoTags"]), config, tuple(layers))


def _regular(members, name: str, hops: int = 8):
    """The regular member `name` is, or leads to through links: `docker save` (legacy layout) stores a layer that
    several images list under different IDs once, and the other IDs' layer.tar are symbolic links to it."""
    member = members.get(name)
    while member is not None and (member.issym() or member.islnk()) and hops > 0:
        target = posixpath.join(posixpath.dirname(name), member.linkname) if member.issym() else member.linkname
        name, hops = posixpath.normpath(target).removeprefix("./"), hops - 1
        member = members.get(name)
    return member if member is not None and member.isfile() else None


def _member_bytes(tar, members, name, path) -> bytes:
    member = members.get(name)
    handle = tar.extractfile(member) if member is not None else None
    if handle is None:
        raise RegistryError(f"{path}: has no {name}")
    return handle.read()


def repository_of(image: str) -> str:
    """The registry repository of `name:tag` (the name without a registry host of its own)."""
    name = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        name = rest
    return name


class Registry:
    """A registry at `address` (host:port), over HTTPS verified with `cafile`, or plain HTTP when `cafile` is
    None (a registry on the hosts' internal network: pulls are by digest, so its content cannot be swapped)."""

    def __init__(self, address: str, cafile: str | None = None, timeout: float = 60):
        self.address = address
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=cafile) if cafile else None

    def _connect(self):
        # Layers go out in 1 MiB blocks (http.client's default is 8 KiB: a 3 GB layer in 390,000 writes).
        if self.context is None:
            return http.client.HTTPConnection(self.address, timeout=self.timeout, blocksize=_CHUNK)
        return http.client.HTTPSConnection(self.address, timeout=self.timeout, context=self.context, blocksize=_CHUNK)

    def _request(self, method, path, body=None, headers=None, ok=(200,)):
        conn = self._connect()
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise RegistryError(f"registry {self.address}: {method} {path.split('?')[0]}: {exc}") from exc
        finally:
            conn.close()
        if resp.status not in ok:
            raise RegistryError(
                f"registry {self.address}: {method} {path.split('?')[0]} answered {resp.status} "
                f"{data[:300].decode(errors='replace')}")
        return resp, data

    def check(self) -> None:
        self._request("GET", "/v2/")

    def wait(self, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> None:
        """Until the registry answers (a registry just started); RegistryError when timeout_s pass first, or at once
        when alive() says the process behind it has gone."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.check()
                return
            except RegistryError:
                if not alive() or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def has_manifest(self, repo: str, digest: str) -> bool:
        resp, _ = self._request("HEAD", f"/v2/{repo}/manifests/{digest}", headers={"Accept": OCI_MANIFEST},
                                ok=(200, 404))
        return resp.status == 200

    def has_blob(self, repo: str, digest: str) -> bool:
        resp, _ = self._request("HEAD", f"/v2/{repo}/blobs/{digest}", ok=(200, 404))
        return resp.status == 200

    def upload_blob(self, repo: str, digest: str, size: int, body) -> None:
        resp, _ = self._request("POST", f"/v2/{repo}/blobs/uploads/", ok=(202,))
        location = urllib.parse.urlsplit(resp.getheader("Location") or "")
        query = urllib.parse.parse_qsl(location.query) + [("digest", digest)]
        target = f"{location.path}?{urllib.parse.urlencode(query)}"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        self._request("PUT", target, body=body, headers=headers, ok=(201,))

    def put_manifest(self, repo: str, reference: str, manifest: bytes) -> None:
        self._request("PUT", f"/v2/{repo}/manifests/{reference}", body=manifest,
                      headers={"Content-Type": OCI_MANIFEST}, ok=(201,))


def push(registry: Registry, archive: str, image: str) -> dict:
    """Push `image` (name:tag) of `archive` to `registry` unless its manifest is there already.
    Returns {repository, digest (the manifest's), image_id, changed, uploaded (bytes)}."""
    held = read_archive(archive, image)
    repo = repository_of(image)
    digest = held.manifest_digest
    result = {"repository": repo, "digest": digest, "image_id": held.image_id, "changed": False, "uploaded": 0}
    if registry.has_manifest(repo, digest):
        return result
    with tarfile.open(archive, "r:") as tar:
        sent = set()
        for blob in held.layers:
            if blob.digest in sent or registry.has_blob(repo, blob.digest):
                continue
            registry.upload_blob(repo, blob.digest, blob.size, _Hashed(tar.extractfile(blob.source), blob))
            sent.add(blob.digest)
            result["uploaded"] += blob.size
    if not registry.has_blob(repo, held.image_id):
        registry.upload_blob(repo, held.image_id, len(held.config), held.config)
        result["uploaded"] += len(held.config)
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else "latest"
    registry.put_manifest(repo, tag, held.manifest())
    result["changed"] = True
    return result


class _Hashed:
    """A layer's bytes as read from the archive, checked against the size sent as Content-Length and the digest
    the manifest will name (a registry rejects a mismatch too, but this names the archive's member)."""

    def __init__(self, handle, blob: Blob):
        self.handle, self.blob, self.hash, self.read_bytes = handle, blob, hashlib.sha256(), 0

    def read(self, size=_CHUNK):
        data = self.handle.read(size if size and size > 0 else _CHUNK)
        self.hash.update(data)
        self.read_bytes += len(data)
        if self.read_bytes > self.blob.size:
            raise RegistryError(f"layer {self.blob.source}: longer than its {self.blob.size} bytes")
        if not data and "sha256:" + self.hash.hexdigest() != self.blob.digest:
            raise RegistryError(f"layer {self.blob.source}: its content is not {self.blob.digest}")
        return data
