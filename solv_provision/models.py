"""Staged model weights: a model's place in the model store (on the controller) and on a host, the manifest
that proves a copy complete, and `solv-provision models fetch`.

A `vllm_models` entry's `model` is a Hugging Face repository id (`org/name`, optionally with a `revision`) or
an absolute path inside the container. With `vllm_model_store` set, every repository id of the host is staged:
`models fetch` downloads it into `<store>/<org>--<name>/<revision>/`, writes the manifest (size and sha256 of
every file) last, and `apply` copies what a host lacks to the same place under `<solv_root_dir>/data/vllm/models`,
mounted read-only at /models, where vLLM reads it with HF_HUB_OFFLINE=1. A directory without its manifest is
incomplete, on the controller and on a host.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = ".solv-manifest.json"
HOST_DIR = "data/vllm/models"  # under solv_root_dir
CONTAINER_DIR = "/models"
DEFAULT_REVISION = "main"
# huggingface_hub's bookkeeping inside a local_dir download: never staged.
_SKIPPED = (".cache",)
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)?")
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True, order=True)
class ModelRef:
    """One repository at one revision: what a store and a host hold."""

    repo: str
    revision: str = DEFAULT_REVISION

    @property
    def relpath(self) -> str:
        """`<org>--<name>/<revision>`: the same below the store and below a host's models directory."""
        return f"{self.repo.replace('/', '--')}/{self.revision}"

    def __str__(self) -> str:
        return f"{self.repo}@{self.revision}"


def is_path(model: str) -> bool:
    return model.startswith("/")


def model_problems(model: Any, revision: Any) -> list[str]:
    """What is wrong with one entry's model and revision (messages without the entry's label)."""
    problems = []
    model = str(model)
    if not is_path(model) and not _HUB_ID.fullmatch(model):
        problems.append(f"model {model!r} is neither a Hugging Face repository id (org/name) nor an absolute path "
                        "inside the container")
    if revision is not None:
        if is_path(model):
            problems.append(f"revision {revision!r} applies to a Hugging Face repository, not to the path {model!r}")
        elif not _REVISION.fullmatch(str(revision)):
            problems.append(f"revision {revision!r} must be a branch, tag or commit made of letters, digits, '.', "
                            "'_' and '-'")
    return problems


def store_of(store: str, bundle_dir: str = "") -> str:
    """The model store apply stages from: vllm_model_store, else an offline bundle's models/ (`apply --bundle`)
    when the bundle carries models (`bundle create` writes models/ only then)."""
    if store or not bundle_dir:
        return store
    carried = Path(bundle_dir) / "models"
    return str(carried) if carried.is_dir() else ""


def host_store(hostvars: Mapping[str, Any]) -> str:
    """store_of a host's variables."""
    return store_of(str(hostvars.get("vllm_model_store") or ""), str(hostvars.get("solv_bundle_dir") or ""))


def staged_ref(entry: Mapping[str, Any], store: str) -> ModelRef | None:
    """The staged model of one (normalized) vllm_models entry: None without a store or for a path."""
    model = str(entry["model"])
    if not store or is_path(model):
        return None
    return ModelRef(model, str(entry.get("revision") or DEFAULT_REVISION))


def store_problems(entries: Iterable[Mapping[str, Any]], store: str) -> list[tuple[str, str]]:
    """(label, message) for each staged model the store (a controller path) does not hold complete."""
    if not store:
        return []
    if not os.path.isabs(store):
        return [("vllm_model_store", f"{store!r} must be an absolute path on the controller")]
    problems = []
    for i, entry in enumerate(entries):
        ref = staged_ref(entry, store)
        if ref and read_manifest(Path(store) / ref.relpath) is None:
            problems.append((f"vllm_models[{i}] ({entry['name']})",
                             f"{ref} is not in the model store {store} (or its download is incomplete): run "
                             "`solv-provision models fetch -i INVENTORY`"))
    return problems


# --- manifests ---------------------------------------------------------------------------------------------


def _files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and rel.parts[0] not in _SKIPPED and rel.name != MANIFEST:
            yield path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def make_manifest(root: Path, ref: ModelRef, commit: str | None = None) -> dict[str, Any]:
    """{model, revision, commit, files: {relpath: {size, sha256}}} of a complete download."""
    files = {str(p.relative_to(root)): {"size": p.stat().st_size, "sha256": sha256_of(p)} for p in _files(root)}
    return {"model": ref.repo, "revision": ref.revision, "commit": commit, "files": files}


def write_manifest(root: Path, manifest: Mapping[str, Any]) -> None:
    tmp = root / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    tmp.replace(root / MANIFEST)


def read_manifest(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def manifest_bytes(manifest: Mapping[str, Any]) -> int:
    return sum(int(f["size"]) for f in manifest["files"].values())


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """A short digest of the files (names, sizes, checksums): changes when the weights change."""
    text = json.dumps(manifest["files"], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- which models an inventory needs -----------------------------------------------------------------------


def needed(hosts: Mapping[str, Mapping[str, Any]], store: str | None = None) -> dict[str, set[ModelRef]]:
    """{store: the models staged from it} over the given inference hosts' vllm_models (normalized); `store`
    overrides each host's vllm_model_store (`models fetch -o`), else hosts without a store stage nothing."""
    out: dict[str, set[ModelRef]] = {}
    for hostvars in hosts.values():
        where = store or host_store(hostvars)
        for entry in hostvars.get("vllm_models") or []:
            ref = staged_ref(entry, where)
            if ref:
                out.setdefault(where, set()).add(ref)
    return out


def token(hosts: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The inventory's Hugging Face token (vllm_hf_token, vault), else None: huggingface_hub reads HF_TOKEN."""
    for hostvars in hosts.values():
        value = hostvars.get("vllm_hf_token")
        if isinstance(value, str) and value:
            return value
    return None


# --- models fetch ------------------------------------------------------------------------------------------


def fetch(ref: ModelRef, store: Path, *, token: str | None = None, refresh: bool = False) -> tuple[bool, dict]:
    """Download one model into the store (huggingface_hub: resumable, progress bars; the endpoint from
    HF_ENDPOINT) and write its manifest last. Returns (downloaded, manifest); a complete copy is kept unless
    `refresh` (a branch revision such as main moves: refresh takes its newest commit)."""
    root = store / ref.relpath
    have = read_manifest(root)
    if have is not None and not refresh:
        return False, have
    from huggingface_hub import snapshot_download

    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST).unlink(missing_ok=True)
    # HF_ENDPOINT read now, not when huggingface_hub was imported.
    snapshot_download(repo_id=ref.repo, revision=ref.revision, local_dir=root, token=token,
                      endpoint=os.environ.get("HF_ENDPOINT") or None)
    manifest = make_manifest(root, ref, commit=_commit_of(root, ref))
    write_manifest(root, manifest)
    return True, manifest


def _commit_of(root: Path, ref: ModelRef) -> str | None:
    """The commit a local_dir download resolved (huggingface_hub keeps it per file under .cache)."""
    for meta in sorted((root / ".cache" / "huggingface" / "download").rglob("*.metadata")):
        first = meta.read_text().splitlines()[:1]
        if first:
            return first[0].strip()
    return ref.revision if re.fullmatch(r"[0-9a-f]{40}", ref.revision) else None
