"""An offline bundle: everything an inventory needs at a site without internet, written on a machine with it.

`<dir>/images.tar`: every container image the inventory runs, and the one the GPU hosts' container check starts,
one `docker save` (a layer shared by several images is in it once); `<dir>/models/`: the staged models (a model store: `<org>--<name>/<revision>/` with its manifest);
`<dir>/bundle.json`: what is in it, with versions and checksums. `verify` checks all of it against bundle.json.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from solv_provision import gateway, models, monitoring, multinode, paths, registry, routing, specs
from solv_provision.addresses import bracketed, host_address
from solv_provision.inventory import Inventory, Unresolved

FORMAT = 1
MANIFEST = "bundle.json"
IMAGES = "images.tar"
MODELS = "models"
# The roles whose one image runs on each host of their group, in playbook order (vLLM, on "inference": per instance).
_ROLE_IMAGES = {"registry": ("registry",), "inference": (), "gateway": ("searxng", "litellm", "openwebui", "caddy"),
                monitoring.MONITORED: ("node_exporter",), monitoring.GPU_MONITORED: ("dcgm_exporter",),
                monitoring.PROBING: ("blackbox_exporter",), monitoring.GROUP: ("alertmanager", "prometheus")}


class BundleError(Exception):
    """A bundle cannot be made or read (the message says what and where)."""


def _var(hostvars: Mapping[str, Any], host: str, name: str) -> Any:
    value = hostvars[name] if name in hostvars else specs.default(name)
    if isinstance(value, Unresolved):
        raise BundleError(f"host {host}: {name} cannot be resolved here ({value.reason})")
    return value


def _image(hostvars: Mapping[str, Any], host: str, prefix: str) -> str:
    return f"{_var(hostvars, host, f'{prefix}_image')}:{_var(hostvars, host, f'{prefix}_image_tag')}"


def images(inv: Inventory) -> dict[str, list[str]]:
    """{image (name:tag): the hosts that run it} for every image the inventory runs (the GPU check's included)."""
    found: dict[str, set[str]] = {}

    def add(ref: str, host: str) -> None:
        found.setdefault(ref, set()).add(host)

    for group, roles in _ROLE_IMAGES.items():
        for host in inv.in_group(group):
            for role in roles:
                add(_image(inv.hosts[host], host, role), host)
    gateways = {h: inv.hosts[h] for h in inv.in_group("gateway")}
    for host in gateways:
        if gateway.redis_plan(host, gateways, gateway.REDIS_PORT)["runs_here"]:
            add(_image(inv.hosts[host], host, "litellm_redis"), host)
        if monitoring.runs_grafana(host, inv.ordered_groups, inv.hosts):
            add(_image(inv.hosts[host], host, "grafana"), host)
    groups = inv.ordered_groups
    for host in inv.in_group("inference"):
        hv = inv.hosts[host]
        if check := _gpu_check_image(hv, host):
            add(check, host)
        own = [routing.model_defaults(m) for m in hv.get("vllm_models") or []]
        for instance in multinode.host_instances(host, own, inv.hosts, groups, inv.group_names(host)):
            add(routing.instance_image(instance, _var(hv, host, "vllm_image"), _var(hv, host, "vllm_image_tag"))["ref"],
                host)
    return {ref: sorted(hosts) for ref, hosts in sorted(found.items())}


def host_archives(host: str, hostvars: Mapping[str, Mapping[str, Any]], groups: Mapping[str, list[str]],
                  bundle_dir: str = "") -> list[dict[str, Any]]:
    """[{archive, images}] that `host` loads its images from, in the order the playbooks start them (registry,
    vLLM, gateway, monitoring), each archive as the roles name it (image_archive), for loading them ahead of the
    roles (solv_image_archive_shared). Left to the roles themselves: an image whose variables do not resolve here
    (its role's preflight says why), and those a role runs on conditions beyond this host (LiteLLM's Redis,
    Grafana, a rank of another host's multi-host model)."""
    hv = hostvars[host]
    member = {g for g, hosts in groups.items() if host in hosts}
    member.update(monitoring.computed_groups_of(host, groups, hostvars))
    wanted: list[Callable[[], list[tuple[str, str]]]] = []
    for group, roles in _ROLE_IMAGES.items():
        if group == "inference" and group in member:
            wanted.append(functools.partial(_vllm_archives, hv, host))
        elif group in member:
            wanted.extend(functools.partial(_role_archive, hv, host, role) for role in roles)
    found: dict[str, list[str]] = {}
    for entries in wanted:
        try:
            resolved = entries()
        except Exception:  # anything that does not resolve is the role's to report
            continue
        for ref, archive in resolved:
            if archive := image_archive(archive, bundle_dir, ref):
                found.setdefault(archive, []).append(ref)
    return [{"archive": archive, "images": sorted(set(refs))} for archive, refs in found.items()]


def _role_archive(hv: Mapping[str, Any], host: str, role: str) -> list[tuple[str, str]]:
    return [(_image(hv, host, role), str(_var(hv, host, f"{role}_image_archive") or ""))]


def _vllm_archives(hv: Mapping[str, Any], host: str) -> list[tuple[str, str]]:
    image, tag = _var(hv, host, "vllm_image"), _var(hv, host, "vllm_image_tag")
    archive = str(_var(hv, host, "vllm_image_archive") or "")
    chosen = [routing.instance_image(routing.model_defaults(m), image, tag, archive) for m in _var(hv, host, "vllm_models") or []]
    return [(c["ref"], c["archive"]) for c in chosen]


def _gpu_check_image(hostvars: Mapping[str, Any], host: str) -> str:
    """The image nvidia_container_toolkit starts to see the GPUs (none when its check is off): at a site without
    internet it comes from the bundle like every other, so it must be named as the archive lists it (name:tag)."""
    image = _var(hostvars, host, "nvidia_container_toolkit_verify_image")
    if image and ":" not in image.rsplit("/", 1)[-1]:
        raise BundleError(f"host {host}: nvidia_container_toolkit_verify_image {image} has no tag; name one "
                          f"({image}:<tag>), or set it empty to skip the GPU check")
    return image


def staged_models(inv: Inventory) -> list[tuple[Path, models.ModelRef]]:
    """(store, model) for every model the inventory stages."""
    wanted = models.needed({h: inv.hosts[h] for h in inv.in_group("inference")})
    return sorted((Path(store), ref) for store, refs in wanted.items() for ref in refs)


def image_archive(archive: str, bundle_dir: str, image: str = "") -> str:
    """The archive `image` comes from: the bundle's when it holds the image (it holds every image of the inventory
    it was made from), else the image's own archive (a release given as one, e.g. an upgrade's `-e ..._image_tag`);
    the bundle's when there is neither, so that the failure names the bundle."""
    if not bundle_dir:
        return archive
    if archive and image and image not in held_images(bundle_dir):
        return archive
    return f"{bundle_dir.rstrip('/')}/{IMAGES}"


def held_images(bundle_dir: str) -> frozenset[str]:
    """The images bundle.json lists (none when it cannot be read), read again only when it changed."""
    try:
        return _held_images(str(Path(bundle_dir) / MANIFEST), (Path(bundle_dir) / MANIFEST).stat().st_mtime_ns)
    except OSError:
        return frozenset()


@functools.lru_cache(maxsize=8)
def _held_images(manifest: str, _mtime_ns: int) -> frozenset[str]:
    try:
        return frozenset(image["ref"] for image in json.loads(Path(manifest).read_text()).get("images", []))
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return frozenset()


def unstaged_models(inv: Inventory) -> list[str]:
    """`host: instance (repository)` for each repository id no store stages: it downloads at the site."""
    out = []
    for host in inv.in_group("inference"):
        store = models.host_store(inv.hosts[host])
        for entry in inv.hosts[host].get("vllm_models") or []:
            if not models.is_path(str(entry["model"])) and models.staged_ref(entry, store) is None:
                out.append(f"{host}: {entry['name']} ({entry['model']})")
    return out


def sha256_of(path: Path) -> str:
    return "sha256:" + models.sha256_of(path)


# --- create ------------------------------------------------------------------------------------------------


def create(inv: Inventory, out: Path, *, docker: str = "docker", echo: Callable[[str], None] = print) -> dict:
    """Write the bundle of `inv` into `out` (created; an existing bundle there is replaced) and return its
    manifest. Images missing from this machine's Docker engine are pulled first."""
    refs = images(inv)
    wanted_models = staged_models(inv)
    for store, ref in wanted_models:
        if models.read_manifest(store / ref.relpath) is None:
            raise BundleError(f"{ref} is not complete in the model store {store}: run `solv-provision models fetch`")
    out.mkdir(parents=True, exist_ok=True)
    for ref in refs:
        if _run([docker, "image", "inspect", ref]).returncode != 0:
            echo(f"pulling {ref}")
            pulled = _run([docker, "pull", ref])
            if pulled.returncode != 0:
                raise BundleError(f"image {ref} is neither on this machine nor pullable: {_last_line(pulled)}")
    echo(f"saving {len(refs)} image(s) into {out / IMAGES}")
    partial = out / f"{IMAGES}.partial"
    saved = _run([docker, "save", "--output", str(partial), *refs])
    if saved.returncode != 0:
        raise BundleError(f"docker save failed: {_last_line(saved)}")
    partial.replace(out / IMAGES)
    shutil.rmtree(out / MODELS, ignore_errors=True)
    entries = []
    for store, ref in wanted_models:
        echo(f"copying {ref} from {store}")
        _copy_tree(store / ref.relpath, out / MODELS / ref.relpath)
        manifest = models.read_manifest(out / MODELS / ref.relpath)
        entries.append({"model": ref.repo, "revision": ref.revision, "path": f"{MODELS}/{ref.relpath}",
                        "digest": models.manifest_digest(manifest), "bytes": models.manifest_bytes(manifest)})
    doc = {"format": FORMAT, "created": datetime.now(UTC).isoformat(timespec="seconds"),
           "images": [{"ref": ref, "id": registry.read_archive(str(out / IMAGES), ref).image_id, "hosts": hosts}
                      for ref, hosts in refs.items()],
           "archive": {"path": IMAGES, "bytes": (out / IMAGES).stat().st_size, "sha256": sha256_of(out / IMAGES)},
           "models": entries, "unstaged": unstaged_models(inv)}
    (out / MANIFEST).write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def _copy_tree(src: Path, dest: Path) -> None:
    """A model directory, hard-linked where the bundle is on the store's filesystem, else copied; the manifest
    last (a copy cut short has none)."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if not path.is_file() or rel.parts[0] == ".cache" or rel.name == models.MANIFEST:
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
    shutil.copy2(src / models.MANIFEST, dest / models.MANIFEST)


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit {done.returncode}"


# --- verify ------------------------------------------------------------------------------------------------


def read(bundle: Path) -> dict[str, Any]:
    try:
        doc = json.loads((bundle / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{bundle}: no readable {MANIFEST} ({exc})") from exc
    if doc.get("format") != FORMAT:
        raise BundleError(f"{bundle / MANIFEST}: format {doc.get('format')!r}, this solv-provision reads {FORMAT}")
    return doc


def verify(bundle: Path) -> list[str]:
    """What is wrong with the bundle in `bundle` (empty: every checksum matches bundle.json)."""
    doc = read(bundle)
    problems = []
    archive = bundle / doc["archive"]["path"]
    if not archive.is_file():
        return [f"{archive}: missing"]
    if sha256_of(archive) != doc["archive"]["sha256"]:
        problems.append(f"{archive}: sha256 differs from {MANIFEST} (damaged or replaced)")
    else:
        for image in doc["images"]:
            try:
                held = registry.read_archive(str(archive), image["ref"])
            except registry.RegistryError as exc:
                problems.append(str(exc))
                continue
            if held.image_id != image["id"]:
                problems.append(f"{image['ref']}: image {held.image_id} in the archive, {image['id']} in {MANIFEST}")
    for entry in doc["models"]:
        problems += _model_problems(bundle / entry["path"], entry)
    return problems


def _model_problems(root: Path, entry: Mapping[str, Any]) -> Iterable[str]:
    manifest = models.read_manifest(root)
    if manifest is None:
        return [f"{root}: no manifest"]
    if models.manifest_digest(manifest) != entry["digest"]:
        return [f"{root}: its manifest differs from {MANIFEST}"]
    out = []
    for rel, f in manifest["files"].items():
        path = root / rel
        if not path.is_file() or path.stat().st_size != f["size"] or models.sha256_of(path) != f["sha256"]:
            out.append(f"{path}: missing or not the file its manifest names")
    return out


# --- use ---------------------------------------------------------------------------------------------------


def problems(inv: Inventory, bundle_dir: str) -> list[str]:
    """What keeps `apply --bundle` (or the inventory's solv_bundle_dir) from converging from this bundle alone:
    an unreadable bundle, an image of the inventory it lacks. Reads bundle.json only (`verify` reads the rest)."""
    try:
        doc = read(Path(bundle_dir))
    except BundleError as exc:
        return [str(exc)]
    held = {image["ref"] for image in doc["images"]}
    try:
        wanted = images(inv)
    except BundleError as exc:
        return [str(exc)]
    return [f"{bundle_dir}: has no image {ref} (run on {', '.join(hosts)}); create the bundle from this inventory"
            for ref, hosts in wanted.items() if ref not in held]


@contextlib.contextmanager
def serving(inv: Inventory, bundle_dir: str, *, address: str | None = None, port: int | None = None,
            echo: Callable[[str], None] = print) -> Iterator[dict[str, str]]:
    """The extra variables of a run from `bundle_dir` (absolute). With a `registry` group the site registry takes
    the bundle's images; without one, a registry on this machine serves them while the run lasts, at `address`
    (default: this machine's address towards the first host)."""
    extra = {"solv_bundle_dir": bundle_dir}
    if inv.in_group("registry"):
        yield extra
        return
    first = next(iter(inv.hosts))
    address = address or route_source(host_address(inv.hosts[first], first))
    with Served(paths.state_dir() / "bundle-registry", address, port) as served:
        echo(f"serving the bundle's images from {served.reference}")
        yield {**extra, "solv_bundle_registry": served.reference}


def route_source(address: str) -> str:
    """This machine's own address on the way to `address` (what a host there reaches it at)."""
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(address, 9, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect(sockaddr)
            return str(s.getsockname()[0])
    except OSError as exc:
        raise BundleError(f"cannot tell this machine's address towards {address} ({exc}): give --bundle-address")


def _kept_port(state_dir: Path, address: str) -> int:
    """A free port, chosen once and kept: the hosts' Docker trusts the registry by address:port (daemon.json), so a
    new port would restart Docker on every host at the next run."""
    kept = state_dir / "port"
    try:
        return int(kept.read_text())
    except (OSError, ValueError):
        pass
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as s:
        s.bind((address, 0))
        port = int(s.getsockname()[1])
    state_dir.mkdir(parents=True, exist_ok=True)
    kept.write_text(f"{port}\n")
    return port


class Served:
    """Debian's Docker distribution registry (`docker-registry`) on this machine, serving a bundle's images to the
    hosts while a play runs. Its storage outlives the run (`state_dir`): the layers pushed once stay."""

    def __init__(self, state_dir: Path, address: str, port: int | None = None):
        self.state_dir, self.address, self.port = state_dir, address, port or _kept_port(state_dir, address)
        self.process: subprocess.Popen | None = None

    @property
    def reference(self) -> str:
        return f"{bracketed(self.address)}:{self.port}"

    def __enter__(self) -> Served:
        binary = shutil.which("docker-registry") or shutil.which("registry")
        if binary is None:
            raise BundleError("no registry on this machine to serve the bundle's images: install Debian's "
                              "docker-registry (apt install docker-registry), or give the inventory a `registry` group")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        config = self.state_dir / "config.yml"
        config.write_text(json.dumps({
            "version": 0.1, "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(self.state_dir / "storage")}},
            "http": {"addr": f"{bracketed(self.address)}:{self.port}"}}))
        log = (self.state_dir / "registry.log").open("ab")
        self.process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
        try:  # a stop while it starts (Ctrl-C, SIGTERM) or a failed start ends it too
            registry.Registry(self.reference, timeout=2).wait(10, alive=lambda: self.process.poll() is None)
        except BaseException as exc:
            exited = self.process.poll() is not None
            self.__exit__()
            if not isinstance(exc, registry.RegistryError):
                raise
            log = self.state_dir / "registry.log"
            raise BundleError(f"the registry exited at start ({log} says why)" if exited
                              else f"the registry did not answer on {self.reference} ({log})") from exc
        return self

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
