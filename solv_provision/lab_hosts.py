"""Lab hosts: one systemd container per inventory host, on a fixed docker network, reachable by SSH.

Everything created is labelled with the inventory it belongs to, so `down` removes exactly that:
containers solv-lab-<host>, their /var/lib/docker volumes, and the network once nothing uses it.
Each host sees this machine's image archives read-only at the same path: the lab stands for a site whose hosts
share the controller's archives (`solv_image_archive_shared` in the lab's group_vars).
Test and lab use only.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from solv_provision.lab_images import archives_dir

NETWORK = "solv-lab"
SUBNET = ipaddress.ip_network("10.213.47.0/24")  # away from docker's 172.17+/16 and home 192.168
GATEWAY = "10.213.47.1"
HOST_IMAGE = "solv-lab/host:debian12"
LABEL = "org.solv-lab.lab"  # value: the inventory folder (resolved)
LABEL_HOST = "org.solv-lab.host"
BOOT_TIMEOUT_S = 90
SSH_TIMEOUT_S = 30

# systemd as PID 1 without --privileged (see lab/README.md); NET_ADMIN for the host's own dockerd.
RUN_OPTIONS = [
    "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN",
    "--security-opt", "seccomp=unconfined", "--cgroupns=host",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
    "--stop-signal", "SIGRTMIN+3",
]


class LabHostError(RuntimeError):
    pass


@dataclass(frozen=True)
class LabHost:
    name: str
    address: str

    @property
    def container(self) -> str:
        return f"solv-lab-{self.name}"

    @property
    def volume(self) -> str:
        return f"solv-lab-{self.name}-docker"


# --- inventory ---------------------------------------------------------------------------------


def _walk(group: dict, found: dict[str, dict]) -> None:
    for name, hvars in (group.get("hosts") or {}).items():
        found.setdefault(name, {}).update(hvars or {})
    for child in (group.get("children") or {}).values():
        _walk(child or {}, found)


def read_hosts(inventory: Path) -> list[LabHost]:
    """The hosts of <inventory>/hosts.yml with their fixed ansible_host address in SUBNET."""
    path = inventory / "hosts.yml"
    if not path.is_file():
        raise LabHostError(f"{path} not found")
    data = yaml.safe_load(path.read_text()) or {}
    found: dict[str, dict] = {}
    for group in data.values():
        _walk(group or {}, found)
    hosts = []
    for name, hvars in sorted(found.items()):
        address = str(hvars.get("ansible_host", ""))
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise LabHostError(f"{path}: host {name} needs a literal ansible_host IP in {SUBNET}, "
                               f"has {address or 'none'}") from None
        if ip not in SUBNET or str(ip) == GATEWAY or ip in (SUBNET.network_address, SUBNET.broadcast_address):
            raise LabHostError(f"{path}: {name}'s ansible_host {ip} is not a usable address of {SUBNET}")
        hosts.append(LabHost(name, address))
    if not hosts:
        raise LabHostError(f"{path} names no hosts")
    seen: dict[str, str] = {}
    for h in hosts:
        if h.address in seen:
            raise LabHostError(f"{path}: {h.name} and {seen[h.address]} share {h.address}")
        seen[h.address] = h.name
    return hosts


def key_path(inventory: Path) -> Path:
    return inventory / ".lab" / "id_ed25519"


def ensure_key(inventory: Path) -> tuple[Path, bool]:
    """The lab's SSH key (generated once); returns (private key path, created)."""
    key = key_path(inventory)
    if key.exists():
        return key, False
    key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    r = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "solv-lab", "-f", str(key)],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise LabHostError(f"ssh-keygen failed: {r.stderr.strip()}")
    return key, True


# --- docker ------------------------------------------------------------------------------------


def _docker(*args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["docker", *args], capture_output=True, text=True, input=stdin, check=False)
    if check and r.returncode != 0:
        raise LabHostError(f"docker {' '.join(args[:2])}: {r.stderr.strip() or r.stdout.strip()}")
    return r


def _inspect(kind: str, name: str) -> dict | None:
    r = _docker(kind, "inspect", name, check=False)
    return json.loads(r.stdout)[0] if r.returncode == 0 else None


def _ensure_network(owner: str) -> str:
    net = _inspect("network", NETWORK)
    if net is None:
        _docker("network", "create", "--driver", "bridge", "--subnet", str(SUBNET), "--gateway", GATEWAY,
                "--label", f"{LABEL}={owner}", NETWORK)
        return "created"
    subnets = [c.get("Subnet") for c in (net.get("IPAM") or {}).get("Config") or []]
    if str(SUBNET) not in subnets:
        raise LabHostError(f"docker network {NETWORK} exists with subnet {subnets}, not {SUBNET}; "
                           f"remove it (docker network rm {NETWORK}) if it is not in use")
    return "exists"


def _systemd_state(container: str) -> str:
    r = _docker("exec", container, "systemctl", "is-system-running", check=False)
    return r.stdout.strip() or "unreachable"


def _wait_booted(host: LabHost) -> str:
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    state = "unreachable"
    while time.monotonic() < deadline:
        state = _systemd_state(host.container)
        if state in ("running", "degraded"):
            return state
        time.sleep(0.5)
    raise LabHostError(f"{host.name}: systemd did not finish booting in {BOOT_TIMEOUT_S}s (state: {state}); "
                       f"see: docker exec {host.container} systemctl --failed")


def _install_key(host: LabHost, pubkey: str) -> bool:
    current = _docker("exec", host.container, "cat", "/root/.ssh/authorized_keys", check=False).stdout
    if pubkey.strip() in current.splitlines():
        return False
    _docker("exec", "-i", host.container, "sh", "-c",
            "umask 077 && mkdir -p /root/.ssh && cat >> /root/.ssh/authorized_keys", stdin=pubkey)
    return True


def ssh_argv(host: LabHost, key: Path, command: str) -> list[str]:
    """ssh running `command` as root on a lab host (its key; host keys change with every lab: not kept)."""
    return ["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
            f"root@{host.address}", command]


def ssh_works(host: LabHost, key: Path) -> bool:
    return subprocess.run(ssh_argv(host, key, "true"), capture_output=True, check=False).returncode == 0


def _wait_ssh(host: LabHost, key: Path) -> None:
    deadline = time.monotonic() + SSH_TIMEOUT_S
    while time.monotonic() < deadline:
        if ssh_works(host, key):
            return
        time.sleep(0.5)
    raise LabHostError(f"{host.name}: ssh root@{host.address} with {key} did not work in {SSH_TIMEOUT_S}s")


def _start(host: LabHost, owner: str) -> str:
    """Create or start the host's container; return what was done."""
    info = _inspect("container", host.container)
    if info is not None:
        if info["Config"]["Labels"].get(LABEL) != owner:
            raise LabHostError(f"container {host.container} exists but does not belong to {owner}; "
                               f"remove it or rename the host")
        attached = info["NetworkSettings"]["Networks"].get(NETWORK) or {}
        ip = (attached.get("IPAMConfig") or {}).get("IPv4Address")
        if ip != host.address and (ip or info["State"]["Running"]):
            raise LabHostError(f"{host.name} runs with address {ip}, the inventory says {host.address}: "
                               f"run `solv-provision lab down` and `up` again")
        if info["State"]["Running"]:
            return "running"
        if attached.get("NetworkID") != _inspect("network", NETWORK)["Id"]:
            # The network was made again (docker's state reset): attach the stopped host to the new one.
            _docker("network", "disconnect", "-f", NETWORK, host.container, check=False)
            _docker("network", "connect", "--ip", host.address, "--alias", host.name, NETWORK, host.container)
        _docker("start", host.container)
        return "started"
    labels = ["--label", f"{LABEL}={owner}", "--label", f"{LABEL_HOST}={host.name}"]
    _docker("volume", "create", *labels, host.volume)
    archives = archives_dir()
    archives.mkdir(parents=True, exist_ok=True)
    _docker("run", "-d", "--name", host.container, "--hostname", host.name,
            "--network", NETWORK, "--ip", host.address, *labels, *RUN_OPTIONS,
            "-v", f"{host.volume}:/var/lib/docker", "-v", f"{archives}:{archives}:ro", HOST_IMAGE)
    return "created"


def _what_it_lacks(host: LabHost) -> str:
    """What the host lacks that a host made now has (an older build of the host image, the shared archives), or ""."""
    info = _inspect("container", host.container)
    current = _inspect("image", HOST_IMAGE)
    if info and current and info["Image"] != current["Id"]:
        return f"runs an older {HOST_IMAGE}"
    if info and str(archives_dir()) not in {m.get("Destination") for m in info.get("Mounts") or []}:
        return f"does not see the image archives ({archives_dir()})"
    return ""


# --- commands ----------------------------------------------------------------------------------


def up(inventory: Path) -> Iterator[str]:
    """Bring every inventory host up (idempotent); yield one line per thing done or found."""
    hosts = read_hosts(inventory)
    owner = str(inventory.resolve())
    if _inspect("image", HOST_IMAGE) is None:
        raise LabHostError(f"{HOST_IMAGE} is missing: run `solv-provision lab images --only host`")
    key, created = ensure_key(inventory)
    if created:
        yield f"ssh key: generated {key}"
    if _ensure_network(owner) == "created":
        yield f"network {NETWORK}: created ({SUBNET})"
    pubkey = key.with_suffix(".pub").read_text()
    for host in hosts:
        action = _start(host, owner)
        state = _wait_booted(host)
        key_added = _install_key(host, pubkey)
        _wait_ssh(host, key)
        line = f"{host.name}: {action} at {host.address}, systemd {state}, ssh ok"
        if key_added:
            line += " (key installed)"
        if lacks := _what_it_lacks(host):
            line += f"; note: {lacks} (lab down + up to refresh)"
        yield line


def _owned(kind: str, owner: str) -> list[str]:
    fmt = "{{.Names}}" if kind == "ps" else "{{.Name}}"
    args = ["ps", "-a"] if kind == "ps" else [kind, "ls"]
    r = _docker(*args, "--filter", f"label={LABEL}={owner}", "--format", fmt)
    return [n for n in r.stdout.split() if n]


def down(inventory: Path) -> Iterator[str]:
    """Remove this inventory's lab containers and volumes, and the network when nothing uses it."""
    owner = str(inventory.resolve())
    for name in _owned("ps", owner):
        _docker("rm", "-f", "-v", name)
        yield f"{name}: removed"
    for name in _owned("volume", owner):
        _docker("volume", "rm", name)
        yield f"volume {name}: removed"
    net = _inspect("network", NETWORK)
    if net is not None and net["Labels"].get(LABEL) is not None:
        if net.get("Containers"):
            yield f"network {NETWORK}: kept (still used by {len(net['Containers'])} container(s))"
        else:
            _docker("network", "rm", NETWORK)
            yield f"network {NETWORK}: removed"


def status(inventory: Path) -> Iterator[str]:
    """One line per inventory host: container state, systemd state, ssh."""
    key = key_path(inventory)
    for host in read_hosts(inventory):
        info = _inspect("container", host.container)
        if info is None:
            yield f"{host.name}: absent ({host.address})"
            continue
        if not info["State"]["Running"]:
            yield f"{host.name}: {info['State']['Status']} ({host.address})"
            continue
        ssh = "ok" if key.exists() and ssh_works(host, key) else "fails"
        yield f"{host.name}: running at {host.address}, systemd {_systemd_state(host.container)}, ssh {ssh}"
