"""An image archive sent to a host without the layers the host has already (the air-gapped path, no site registry).

`docker load` keys a layer by its chain (the layer and every layer below it) and reads a layer's file from the
archive only when the engine lacks that chain, so an archive may leave out the files of the image's first k layers
when one of the host's images starts with the same k layers: an upgrade to a release that changed only its top
layers (or its config) sends those, not the whole image (when what is left out is at least a tenth of the
archive: the smaller archive is written on the controller first). An engine that wants every file anyway (Docker's
containerd image store) fails the load, and solv_common then sends the whole archive.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterable

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


def write_without_layers(archive: str, held: ArchiveImage, k: int, dest: str) -> int:
    """Write to dest the archive without the files of the image's first k layers; returns the bytes written.
    A file the image names again above its first k layers (the same layer twice) is kept."""
    left_out = {b.member for b in held.layers[:k]} - {b.member for b in held.layers[k:]}
    try:
        with tarfile.open(archive, "r:") as src, tarfile.open(dest, "w:", format=tarfile.PAX_FORMAT) as out:
            for member in src:
                if member.name.removeprefix("./") in left_out:
                    continue
                out.addfile(member, src.extractfile(member) if member.isfile() else None)
    except (OSError, tarfile.TarError) as exc:
        raise RegistryError(f"{archive}: cannot write it without the host's layers ({exc})") from exc
    with open(dest, "rb") as fh:
        return fh.seek(0, 2)


def plan(archive: str, image: str, host_lines: Iterable[str]) -> tuple[ArchiveImage, int]:
    """The image of the archive and how many of its first layers to leave out: those the host has, unless they are
    under a tenth of the archive (writing the rest again on the controller would then cost more than it saves)."""
    held = read_archive(archive, image)
    k = layers_on_host(held, parse_host_layers(host_lines))
    left_out = sum(b.size for b in held.layers[:k])
    with open(archive, "rb") as fh:
        size = fh.seek(0, 2)
    return held, k if left_out * 10 >= size else 0
