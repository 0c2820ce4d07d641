"""An image archive sent to a host as that image alone, without the layers the host has already (the air-gapped
path, no site registry).

`docker load` keys a layer by its chain (the layer and every layer below it) and reads a layer's file from the
archive only when the engine lacks that chain, so an archive may leave out the files of the image's first k layers
when one of the host's images starts with the same k layers: an upgrade to a release that changed only its top
layers (or its config) sends those, not the whole image. An archive of several images (an offline bundle's) is
sent as the one image asked for. The smaller archive is written on the controller first, when it saves at least a
tenth of the archive. An engine that wants every file anyway (Docker's containerd image store) fails the load, and
solv_common then sends the image with all its layers.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass

from solv_provision.registry import ArchiveImage, RegistryError, read_archive


def parse_host_layers(lines: Iterable[str]) -> list[list[str]]:
    """The diff IDs of each image on the host, from `docker image inspect --format '{{json .RootFS.Layers}}'`
    (one JSON list per line; other lines are ignored)."""
    out = []
    for line in lines:
        try:
            layers = json.loads(line)
        except ValueError:
            continue
        if isinstance(layers, list) and all(isinstance(d, str) for d in layers):
            out.append(layers)
    return out


def layers_on_host(held: ArchiveImage, host_layers: Iterable[list[str]]) -> int:
    """How many of the image's first layers the host has: the longest prefix of its diff IDs that one of the host's
    images starts with."""
    wanted = [b.digest for b in held.layers]
    best = 0
    for have in host_layers:
        k = 0
        while k < min(len(wanted), len(have)) and wanted[k] == have[k]:
            k += 1
        best = max(best, k)
    return best


def write_image(archive: str, held: ArchiveImage, k: int, dest: str) -> int:
    """Write to dest an archive of the image alone (its manifest.json entry, config and layers, each layer a file
    under the name the entry gives it, links resolved) without the files of its first k layers; returns the bytes
    written. A file the image names again above its first k layers (the same layer twice) is kept."""
    kept = {b.member: b.source for b in held.layers[k:]}
    config_name = held.image_id.removeprefix("sha256:") + ".json"
    index = [{"Config": config_name, "RepoTags": list(held.repo_tags), "Layers": [b.member for b in held.layers]}]
    try:
        with tarfile.open(archive, "r:") as src, tarfile.open(dest, "w:", format=tarfile.PAX_FORMAT) as out:
            _add_bytes(out, config_name, held.config)
            for name, source in kept.items():
                member = src.getmember(source)
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = member.size, 0o644, member.mtime
                out.addfile(info, src.extractfile(member))
            _add_bytes(out, "manifest.json", json.dumps(index).encode())
    except (OSError, tarfile.TarError, KeyError) as exc:
        raise RegistryError(f"{archive}: cannot write {held.repo_tags[0]} alone from it ({exc})") from exc
    with open(dest, "rb") as fh:
        return fh.seek(0, 2)


def _add_bytes(out: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    out.addfile(info, io.BytesIO(data))


@dataclass(frozen=True)
class Plan:
    held: ArchiveImage
    left_out: int  # how many of the image's first layers the host has (their files are not sent)
    write: bool  # send an archive of the image alone (write_image), not the archive as it is


def plan(archive: str, image: str, host_lines: Iterable[str]) -> Plan:
    """The image of the archive and how many of its first layers to leave out: those the host has. The archive is
    written again, as the image alone, unless that saves under a tenth of it (writing on the controller would then
    cost more than it saves); as it is, it holds every layer."""
    held = read_archive(archive, image)
    k = layers_on_host(held, parse_host_layers(host_lines))
    sent = len(held.config) + sum({b.source: b.size for b in held.layers[k:]}.values())
    with open(archive, "rb") as fh:
        size = fh.seek(0, 2)
    write = (size - sent) * 10 >= size
    return Plan(held, k if write else 0, write)
