"""Check-mode matrix of the GPU base roles (container_engine, nvidia_driver, nvidia_container_toolkit).

One ansible-playbook run (tests/gpu_matrix/matrix.yml, --check, connection local) over one host per
case: each host takes the facts of a supported OS (tests/fixtures/facts/) and gets its own fake
sysfs tree (PCI devices with vendor/class ids, loaded modules), so GPU/NVSwitch detection runs for
real. The roles' plan task files decide packages, repositories, holds, nouveau, module streams,
fabric manager and reboot; this test asserts those decisions exactly, and the preflight failures
(branch change, unsupported source) by their messages. No Docker, nothing installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MATRIX = REPO / "tests" / "gpu_matrix" / "matrix.yml"
FIXTURES = REPO / "tests" / "fixtures" / "facts"

CUDA = "https://developer.download.nvidia.com/compute/cuda/repos"
TOOLKIT = "https://nvidia.github.io/libnvidia-container"
DOCKER = "https://download.docker.com/linux"

# PCI functions of a typical 8-GPU HGX H100 board (class 0x030200 "3D controller"), its 4 NVSwitches
# (class 0x068000), and devices that are not NVIDIA GPUs.
H100 = [(f"0000:{bus:02x}:00.0", "0x10de", "0x030200") for bus in (0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB)]
NVSWITCH = [(f"0000:{bus:02x}:00.0", "0x10de", "0x068000") for bus in (0x05, 0x06, 0x07, 0x08)]
L40S_AND_AUDIO = [("0000:41:00.0", "0x10de", "0x030000"), ("0000:41:00.1", "0x10de", "0x040300")]
OTHER = [
    ("0000:00:00.0", "0x8086", "0x060000"),  # host bridge
    ("0000:03:00.0", "0x102b", "0x030000"),  # BMC VGA (Matrox): a display device, not NVIDIA
    ("0000:04:00.0", "0x15b3", "0x020700"),  # ConnectX InfiniBand
]
AMD_ONLY = [("0000:c1:00.0", "0x1002", "0x038000")]
NVIDIA_USB_ONLY = [("0000:41:00.2", "0x10de", "0x0c0330")]  # USB controller of a Turing card, no GPU function

UU_BLACKLIST = [
    "^nvidia-",
    "^libnvidia-",
    "^cuda-drivers",
    "^libcuda",
    "^xserver-xorg-video-nvidia",
    "^firmware-nvidia",
    "^linux-modules-nvidia",
    "^linux-objects-nvidia",
    "^linux-signatures-nvidia",
]
TOOLKIT_PKGS = ["nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools", "libnvidia-container1"]

# case -> inventory of the host: OS fixture, PCI devices, loaded modules, variables.
CASES: dict[str, dict] = {
    # Fresh installs: GPUs, nouveau bound to them, no nvidia module yet.
    "ubuntu2204-gpu": {"os": "ubuntu-22.04", "pci": H100 + OTHER, "nouveau": True},
    "ubuntu2404-gpu": {"os": "ubuntu-24.04", "pci": L40S_AND_AUDIO + OTHER, "nouveau": True, "docker": "20.10.24"},
    "debian12-gpu": {"os": "debian-12", "pci": H100 + OTHER, "nouveau": True},
    "rocky9-gpu": {"os": "rocky-9", "pci": H100 + OTHER, "nouveau": True},
    # HGX with NVSwitch, driver 580 already loaded: fabric manager, no reboot.
    "ubuntu2204-hgx": {"library": "580.95.05", "os": "ubuntu-22.04", "pci": H100 + NVSWITCH + OTHER, "loaded": "580.95.05"},
    "ubuntu2404-hgx": {"library": "580.95.05", "os": "ubuntu-24.04", "pci": H100 + NVSWITCH + OTHER, "loaded": "580.95.05"},
    "debian12-hgx": {"library": "580.95.05", "os": "debian-12", "pci": H100 + NVSWITCH + OTHER, "loaded": "580.95.05"},
    "rocky9-hgx": {"library": "580.95.05", "os": "rocky-9", "pci": H100 + NVSWITCH + OTHER, "loaded": "580.95.05"},
    # Variants.
    "ubuntu2404-cuda-proprietary": {
        "os": "ubuntu-24.04",
        "pci": H100 + OTHER,
        "vars": {"nvidia_driver_source": "cuda_repo", "nvidia_driver_kernel_modules": "proprietary"},
    },
    "ubuntu2404-arm64-cuda": {
        "os": "ubuntu-24.04",
        "pci": H100 + OTHER,
        "facts": {"architecture": "aarch64", "machine": "aarch64", "kernel": "6.8.0-1017-nvidia-64k"},
        "vars": {"nvidia_driver_source": "cuda_repo"},
    },
    "debian12-distro-535": {
        "os": "debian-12",
        "pci": L40S_AND_AUDIO + OTHER,
        "vars": {"nvidia_driver_source": "distro", "nvidia_driver_branch": "535"},
    },
    "rocky9-proprietary": {"os": "rocky-9", "pci": H100 + OTHER, "vars": {"nvidia_driver_kernel_modules": "proprietary"}},
    "ubuntu2404-branch-change-allowed": {
        "os": "ubuntu-24.04",
        "pci": H100 + OTHER,
        "loaded": "535.216.01",
        "vars": {"nvidia_driver_allow_branch_change": True},
    },
    # Libraries updated under the loaded module (same branch): driver/library mismatch until reboot.
    "ubuntu2204-library-newer": {"os": "ubuntu-22.04", "pci": H100 + OTHER, "loaded": "580.65.06", "library": "580.95.05"},
    "ubuntu2204-no-holds": {"os": "ubuntu-22.04", "pci": H100 + OTHER, "vars": {"nvidia_driver_hold_packages": False}},
    "rocky9-cdi-forced-old-docker": {
        "os": "rocky-9",
        "pci": H100 + OTHER,
        "docker": "24.0.9",
        "vars": {"nvidia_container_toolkit_gpu_runtime": "cdi", "nvidia_container_toolkit_version": "1.17.8"},
    },
    # Preflight refusals.
    "ubuntu2404-branch-change-refused": {"os": "ubuntu-24.04", "pci": H100 + OTHER, "loaded": "535.216.01"},
    # 535 installed but its module not built for the running kernel: the libraries still tell the branch.
    "debian12-library-535-refused": {"os": "debian-12", "pci": H100 + OTHER, "library": "535.247.01"},
    "rocky9-distro-refused": {"os": "rocky-9", "pci": H100 + OTHER, "vars": {"nvidia_driver_source": "distro"}},
    "debian12-distro-580-refused": {"os": "debian-12", "pci": H100 + OTHER, "vars": {"nvidia_driver_source": "distro"}},
    "debian12-distro-hgx-refused": {
        "os": "debian-12",
        "pci": H100 + NVSWITCH + OTHER,
        "vars": {"nvidia_driver_source": "distro", "nvidia_driver_branch": "535"},
    },
    # No NVIDIA GPU: the whole roles run (check mode) and must change nothing.
    "debian12-no-gpu": {"os": "debian-12", "pci": OTHER, "mode": "full"},
    "rocky9-amd-gpu": {"os": "rocky-9", "pci": AMD_ONLY + OTHER, "mode": "full"},
    "ubuntu2404-nvidia-usb-only": {"os": "ubuntu-24.04", "pci": NVIDIA_USB_ONLY + OTHER, "mode": "full"},
    # No GPU, but forced: planned like a GPU host, nothing to reboot for, no runtime.
    "ubuntu2204-forced": {"os": "ubuntu-22.04", "pci": OTHER, "vars": {"nvidia_driver_force": True}},
}


def _write_sysfs(root: Path, case: dict) -> None:
    for slot, vendor, klass in case["pci"]:
        dev = root / "bus" / "pci" / "devices" / slot
        dev.mkdir(parents=True)
        (dev / "vendor").write_text(vendor + "\n")
        (dev / "class").write_text(klass + "\n")
        (dev / "device").write_text("0x2330\n")
    (root / "module" / "ext4").mkdir(parents=True)
    if case.get("nouveau"):
        (root / "module" / "nouveau").mkdir()
    if case.get("loaded"):
        (root / "module" / "nvidia").mkdir()
        (root / "module" / "nvidia" / "version").write_text(case["loaded"] + "\n")
    lib = root / "lib"
    lib.mkdir()
    (lib / "libc.so.6").write_text("")
    if case.get("library"):
        (lib / f"libnvidia-ml.so.{case['library']}").write_text("")
        (lib / "libnvidia-ml.so.1").symlink_to(f"libnvidia-ml.so.{case['library']}")


def _run_matrix(tmp: Path) -> tuple[dict, dict]:
    hosts = {}
    for name, case in CASES.items():
        sysroot = tmp / "sys" / name
        _write_sysfs(sysroot, case)
        hosts[name] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "gpu_matrix_os": case["os"],
            "gpu_matrix_mode": case.get("mode", "plan"),
            "gpu_matrix_fact_overrides": case.get("facts", {}),
            "gpu_matrix_sys_root": str(sysroot),
            # What `docker version` would answer (main.yml probes it; plan.yml takes it as input).
            "__nvidia_container_toolkit_docker_version": case.get("docker", "28.5.1"),
            **case.get("vars", {}),
        }
    inventory = tmp / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"vars": {"gpu_matrix_fixtures": str(FIXTURES)}, "hosts": hosts}}))
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_ROLES_PATH=str(REPO / "roles"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        ANSIBLE_FORKS=str(len(CASES)),
        ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-local"),
        ANSIBLE_REMOTE_TEMP=str(tmp / "ansible-remote"),
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_DEPRECATION_WARNINGS="False",
    )
    playbook = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook"
    proc = subprocess.run(
        [playbook, "-i", str(inventory), "--check", str(MATRIX)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    start = proc.stdout.find("{")
    assert start >= 0, f"no JSON from ansible-playbook (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    report = json.loads(proc.stdout[start:])
    results: dict[str, dict] = {name: {"tasks": {}, "failed": None} for name in CASES}
    for play in report["plays"]:
        for task in play["tasks"]:
            tname = task["task"]["name"].split(" : ", 1)[-1]  # role tasks come as "<role> : <name>"
            for host, res in task["hosts"].items():
                if res.get("failed") and not res.get("ignore_errors"):
                    results[host]["failed"] = {"task": tname, "msg": str(res.get("msg", ""))}
                if not res.get("skipped"):
                    results[host]["tasks"][tname] = res
    return results, report["stats"]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    results, stats = _run_matrix(tmp_path_factory.mktemp("gpu-matrix"))
    return results, stats


def _ok(matrix, name):
    results, _ = matrix
    host = results[name]
    assert host["failed"] is None, f"{name} failed in {host['failed']['task']}: {host['failed']['msg']}"
    return host["tasks"]["Matrix | Show the decisions"]["msg"]


def _failed(matrix, name):
    results, _ = matrix
    host = results[name]
    assert host["failed"] is not None, f"{name} should have failed preflight"
    return host["failed"]


def test_every_case_ran_and_nothing_changed(matrix):
    _, stats = matrix
    assert set(stats) == set(CASES)
    for name, counts in stats.items():
        assert counts["changed"] == 0, f"{name}: check mode reported changes {counts}"
        expect_failure = name.endswith("-refused")
        assert (counts["failures"] > 0) == expect_failure, f"{name}: {counts}"
        assert counts["unreachable"] == 0


# ---------------------------------------------------------------- detection

@pytest.mark.parametrize(
    ("name", "gpus", "nvswitch"),
    [
        ("ubuntu2204-gpu", 8, False),
        ("ubuntu2204-hgx", 8, True),
        ("ubuntu2404-gpu", 1, False),  # L40S: VGA class 0x0300 counted, its HDMI audio function not
        ("rocky9-hgx", 8, True),
        ("ubuntu2204-forced", 0, False),
    ],
)
def test_detection(matrix, name, gpus, nvswitch):
    detect = _ok(matrix, name)["detect"]
    assert detect == {"gpu_present": gpus > 0, "gpu_count": gpus, "nvswitch_present": nvswitch}


@pytest.mark.parametrize("name", ["debian12-no-gpu", "rocky9-amd-gpu", "ubuntu2404-nvidia-usb-only"])
def test_no_nvidia_gpu_changes_nothing_and_says_so(matrix, name):
    results, stats = matrix
    got = _ok(matrix, name)
    assert got["detect"] == {"gpu_present": False, "gpu_count": 0, "nvswitch_present": False}
    assert got["runtime"] == "none"
    assert stats[name]["changed"] == 0
    assert got["driver"] is None and got["toolkit"] is None  # nothing to install: neither role plans an install
    # The whole roles ran and said why they did nothing.
    tasks = results[name]["tasks"]
    driver_msg = tasks["Say why nothing is done on a host without an NVIDIA GPU"]["msg"]
    assert driver_msg.startswith(f"No NVIDIA GPU on {name} (no PCI device with vendor 0x10de and class 0x03xx)")
    assert "nvidia_driver_force=true" in driver_msg
    assert tasks["Publish | Say which GPU runtime containers use on this host"]["msg"] == (
        f"solv_gpu_runtime on {name}: none (no NVIDIA GPU: the container toolkit is not installed)")
    # Nothing but the read-only PCI scan touched the host.
    assert "Install and check the driver" not in tasks and "Install and configure the toolkit" not in tasks


# ---------------------------------------------------------------- driver plans per OS

def test_ubuntu2204_canonical_open(matrix):
    d = _ok(matrix, "ubuntu2204-gpu")["driver"]
    assert d["source"] == "distro"
    assert d["repo"] == {}
    assert d["packages"] == ["nvidia-headless-580-server-open", "nvidia-utils-580-server"]
    assert d["prerequisites"] == ["python3-debian", "ca-certificates", "kmod", "linux-headers-5.15.0-126-generic"]
    assert d["module_stream"] == ""
    assert d["version_package"] == "nvidia-utils-580-server"
    assert d["fabricmanager"] is False and d["fabricmanager_package"] == ""
    assert d["hold_method"] == "dpkg_selections"
    assert d["unattended_upgrades_blacklist"] == UU_BLACKLIST
    assert d["nouveau_blacklist"] is True
    assert d["initramfs_command"] == ["update-initramfs", "-u", "-k", "all"]
    assert d["reboot_expected"] is True
    assert d["reboot_reasons"] == ["nouveau is loaded; it gives way to the nvidia module only after a reboot"]
    assert d["branch_change"] is False


def test_ubuntu2204_hgx_fabricmanager_no_reboot(matrix):
    d = _ok(matrix, "ubuntu2204-hgx")["driver"]
    assert d["fabricmanager"] is True
    assert d["fabricmanager_package"] == "nvidia-fabricmanager-580"
    assert d["reboot_expected"] is False and d["reboot_reasons"] == []
    assert d["installed_branch"] == "580" and d["branch_change"] is False


def test_ubuntu2404_canonical(matrix):
    got = _ok(matrix, "ubuntu2404-gpu")
    d = got["driver"]
    assert d["packages"] == ["nvidia-headless-580-server-open", "nvidia-utils-580-server"]
    assert d["prerequisites"][-1] == "linux-headers-6.8.0-49-generic"
    assert d["reboot_expected"] is True
    hgx = _ok(matrix, "ubuntu2404-hgx")["driver"]
    assert hgx["fabricmanager_package"] == "nvidia-fabricmanager-580" and hgx["reboot_expected"] is False


def test_ubuntu2404_cuda_repo_proprietary(matrix):
    d = _ok(matrix, "ubuntu2404-cuda-proprietary")["driver"]
    assert d["source"] == "cuda_repo"
    assert d["packages"] == ["nvidia-driver-pinning-580", "cuda-drivers-580"]
    assert d["version_package"] == "cuda-drivers-580"
    assert d["repo"] == {
        "type": "apt",
        "name": "cuda-ubuntu2404-x86_64",
        "uris": [f"{CUDA}/ubuntu2404/x86_64/"],
        "suites": ["/"],
        "signed_by": f"{CUDA}/ubuntu2404/x86_64/3bf863cc.pub",
        "keyring_list": "/etc/apt/sources.list.d/cuda-ubuntu2404-x86_64.list",
        "pin_origin": "developer.download.nvidia.com",
    }
    assert d["reboot_expected"] is False  # no nouveau loaded, nothing else loaded: modprobe will do


def test_ubuntu2404_arm64_uses_sbsa_tree(matrix):
    d = _ok(matrix, "ubuntu2404-arm64-cuda")["driver"]
    assert d["architecture"] == "aarch64" and d["supported"] is True
    assert d["repo"]["uris"] == [f"{CUDA}/ubuntu2404/sbsa/"]
    assert d["repo"]["name"] == "cuda-ubuntu2404-sbsa"
    assert d["packages"] == ["nvidia-driver-pinning-580", "nvidia-open-580"]
    assert d["prerequisites"][-1] == "linux-headers-6.8.0-1017-nvidia-64k"


def test_debian12_cuda_repo_default(matrix):
    d = _ok(matrix, "debian12-gpu")["driver"]
    assert d["source"] == "cuda_repo"
    assert d["packages"] == ["nvidia-driver-pinning-580", "nvidia-open-580"]
    assert d["repo"]["uris"] == [f"{CUDA}/debian12/x86_64/"]
    assert d["repo"]["signed_by"] == f"{CUDA}/debian12/x86_64/3bf863cc.pub"
    assert d["prerequisites"] == ["python3-debian", "ca-certificates", "kmod", "linux-headers-6.1.0-28-amd64"]
    assert d["hold_method"] == "dpkg_selections"
    assert d["unattended_upgrades_blacklist"] == UU_BLACKLIST
    assert d["reboot_expected"] is True
    hgx = _ok(matrix, "debian12-hgx")["driver"]
    assert hgx["fabricmanager_package"] == "nvidia-fabricmanager-580" and hgx["reboot_expected"] is False


def test_debian12_distro_535(matrix):
    d = _ok(matrix, "debian12-distro-535")["driver"]
    assert d["source"] == "distro" and d["branch"] == "535"
    assert d["packages"] == ["nvidia-open-kernel-dkms", "firmware-nvidia-gsp", "nvidia-smi", "libcuda1", "nvidia-persistenced"]
    assert d["repo"] == {
        "type": "apt",
        "name": "debian-nvidia-components",
        "uris": ["http://deb.debian.org/debian"],
        "suites": ["bookworm", "bookworm-updates"],
        "components": ["contrib", "non-free", "non-free-firmware"],
        "signed_by": "/usr/share/keyrings/debian-archive-keyring.gpg",
    }
    assert d["version_package"] == "nvidia-smi"


def test_rocky9_cuda_repo_module_stream(matrix):
    d = _ok(matrix, "rocky9-gpu")["driver"]
    assert d["source"] == "cuda_repo"
    assert d["pkg_family"] == "dnf"
    assert d["module_stream"] == "nvidia-driver:580-open"
    assert d["packages"] == ["nvidia-open"]
    assert d["epel"] == "epel-release"
    assert d["prerequisites"] == ["python3-dnf-plugin-versionlock", "kmod", "kernel-devel-5.14.0-503.14.1.el9_5.x86_64"]
    assert d["repo"] == {
        "type": "dnf",
        "name": "cuda-rhel9-x86_64",
        "file": "cuda-rhel9",
        "baseurl": f"{CUDA}/rhel9/x86_64",
        "gpgkey": f"{CUDA}/rhel9/x86_64/D42D0685.pub",
    }
    assert d["hold_method"] == "dnf_versionlock"
    assert d["unattended_upgrades_blacklist"] == []
    assert d["initramfs_command"] == ["dracut", "-f", "--regenerate-all"]
    assert d["fabricmanager"] is False
    assert d["reboot_expected"] is True
    hgx = _ok(matrix, "rocky9-hgx")["driver"]
    assert hgx["fabricmanager"] is True and hgx["fabricmanager_package"] == "nvidia-fabric-manager"
    assert hgx["reboot_expected"] is False


def test_rocky9_proprietary_dkms_stream(matrix):
    d = _ok(matrix, "rocky9-proprietary")["driver"]
    assert d["module_stream"] == "nvidia-driver:580-dkms"
    assert d["packages"] == ["cuda-drivers"]
    assert d["version_package"] == "cuda-drivers"


def test_no_holds_when_disabled(matrix):
    d = _ok(matrix, "ubuntu2204-no-holds")["driver"]
    assert d["hold_method"] == "none" and d["unattended_upgrades_blacklist"] == []


def test_forced_without_gpu_plans_an_install(matrix):
    got = _ok(matrix, "ubuntu2204-forced")
    d = got["driver"]
    assert d["forced"] is True and d["gpu_present"] is False
    assert d["packages"] == ["nvidia-headless-580-server-open", "nvidia-utils-580-server"]
    assert got["runtime"] == "none"


# ---------------------------------------------------------------- branch changes and refusals

def test_branch_change_allowed_is_planned_with_reboot(matrix):
    d = _ok(matrix, "ubuntu2404-branch-change-allowed")["driver"]
    assert d["branch_change"] is True
    assert d["installed_branch"] == "535" and d["installed_version"] == "535.216.01"
    assert d["reboot_expected"] is True
    assert d["reboot_reasons"] == ["branch 535 is loaded, 580 is wanted"]


def test_branch_change_refused_names_both_branches(matrix):
    failed = _failed(matrix, "ubuntu2404-branch-change-refused")
    assert failed["task"] == "Preflight | A branch change is explicit"
    assert "runs NVIDIA driver branch 535 (535.216.01)" in failed["msg"]
    assert "nvidia_driver_branch is 580" in failed["msg"]
    assert "nvidia_driver_allow_branch_change=true" in failed["msg"]


def test_branch_change_seen_from_the_libraries(matrix):
    failed = _failed(matrix, "debian12-library-535-refused")
    assert failed["task"] == "Preflight | A branch change is explicit"
    assert "runs NVIDIA driver branch 535 (535.247.01)" in failed["msg"]


def test_library_update_under_loaded_module_needs_reboot(matrix):
    got = _ok(matrix, "ubuntu2204-library-newer")
    d = got["driver"]
    assert d["branch_change"] is False and d["installed_version"] == "580.95.05"
    assert d["reboot_reasons"] == [
        "the loaded module is 580.65.06, the installed driver 580.95.05 (driver/library mismatch until the module is replaced)"
    ]
    assert got["runtime"] == "none"


def test_rhel_has_no_distro_driver(matrix):
    failed = _failed(matrix, "rocky9-distro-refused")
    assert failed["task"] == "Preflight | The source offers a driver on this OS"
    assert "RHEL and its rebuilds ship no NVIDIA driver" in failed["msg"]


def test_debian_distro_only_has_535(matrix):
    failed = _failed(matrix, "debian12-distro-580-refused")
    assert failed["task"] == "Preflight | The distribution carries the requested branch"
    assert "packages driver branch 535 only, not 580" in failed["msg"]


def test_debian_distro_has_no_fabricmanager(matrix):
    failed = _failed(matrix, "debian12-distro-hgx-refused")
    assert failed["task"] == "Preflight | A fabric manager package exists where one is needed"


# ---------------------------------------------------------------- toolkit and solv_gpu_runtime

def test_toolkit_apt_plan_and_runtime(matrix):
    got = _ok(matrix, "ubuntu2204-hgx")
    t = got["toolkit"]
    assert t["repo"] == {
        "type": "apt",
        "name": "nvidia-container-toolkit",
        "uris": [f"{TOOLKIT}/stable/deb/amd64"],
        "suites": ["/"],
        "signed_by": f"{TOOLKIT}/gpgkey",
        "list_file": "/etc/apt/sources.list.d/nvidia-container-toolkit.list",
    }
    assert t["packages"] == [f"{p}=1.18.2-1" for p in TOOLKIT_PKGS]
    assert t["hold_method"] == "dpkg_selections"
    assert t["cdi_refresh_units"] == ["nvidia-cdi-refresh.path", "nvidia-cdi-refresh.service"]
    assert t["cdi_spec"] == "/var/run/cdi/nvidia.yaml"
    assert t["gpu_runtime"] == "cdi" and t["run_flags"] == ["--device", "nvidia.com/gpu=all"]
    assert got["runtime"] == "cdi"  # driver loaded, no reboot pending


def test_toolkit_arm64_repo(matrix):
    assert _ok(matrix, "ubuntu2404-arm64-cuda")["toolkit"]["repo"]["uris"] == [f"{TOOLKIT}/stable/deb/arm64"]


def test_toolkit_dnf_plan(matrix):
    t = _ok(matrix, "rocky9-hgx")["toolkit"]
    assert t["repo"] == {
        "type": "dnf",
        "name": "nvidia-container-toolkit",
        "file": "nvidia-container-toolkit",
        "baseurl": f"{TOOLKIT}/stable/rpm/$basearch",
        "gpgkey": f"{TOOLKIT}/gpgkey",
        "repo_gpgcheck": True,
        "gpgcheck": False,
    }
    assert t["packages"] == [f"{p}-1.18.2-1" for p in TOOLKIT_PKGS]
    assert t["hold_method"] == "dnf_versionlock"


def test_old_docker_gets_gpus_flag(matrix):
    got = _ok(matrix, "ubuntu2404-gpu")
    assert got["toolkit"]["docker_cdi"] is False
    assert got["toolkit"]["gpu_runtime"] == "gpus" and got["toolkit"]["run_flags"] == ["--gpus", "all"]


def test_old_toolkit_keeps_spec_across_boots(matrix):
    t = _ok(matrix, "rocky9-cdi-forced-old-docker")["toolkit"]
    assert t["cdi_refresh_units"] == [] and t["cdi_spec"] == "/etc/cdi/nvidia.yaml"
    assert t["gpu_runtime"] == "cdi" and t["docker_cdi"] is False  # preflight (not run here) refuses this on a real host


@pytest.mark.parametrize(
    ("name", "runtime"),
    [
        ("ubuntu2204-gpu", "none"),  # reboot pending (nouveau loaded)
        ("debian12-gpu", "none"),
        ("rocky9-gpu", "none"),
        ("ubuntu2204-hgx", "cdi"),
        ("debian12-hgx", "cdi"),
        ("rocky9-hgx", "cdi"),
        ("ubuntu2404-cuda-proprietary", "cdi"),
        ("ubuntu2404-branch-change-allowed", "none"),
        ("debian12-no-gpu", "none"),
    ],
)
def test_solv_gpu_runtime(matrix, name, runtime):
    assert _ok(matrix, name)["runtime"] == runtime


# ---------------------------------------------------------------- engine plans

def test_engine_plans(matrix):
    ubuntu = _ok(matrix, "ubuntu2204-gpu")["engine"]
    assert ubuntu["source"] == "docker"
    assert ubuntu["packages"] == ["docker-ce", "docker-ce-cli", "containerd.io"]
    assert ubuntu["companions"] == ["apparmor", "ca-certificates", "pigz", "procps", "xz-utils"]
    assert ubuntu["repo"] == {
        "type": "apt",
        "name": "docker",
        "uris": [f"{DOCKER}/ubuntu"],
        "suites": ["jammy"],
        "components": ["stable"],
        "architectures": ["amd64"],
        "signed_by": f"{DOCKER}/ubuntu/gpg",
    }
    debian = _ok(matrix, "debian12-gpu")["engine"]
    assert debian["repo"]["uris"] == [f"{DOCKER}/debian"] and debian["repo"]["suites"] == ["bookworm"]
    assert debian["conflicting_packages"] == ["docker.io", "podman-docker"]
    rocky = _ok(matrix, "rocky9-gpu")["engine"]
    assert rocky["repo"] == {
        "type": "dnf",
        "name": "docker-ce-stable",
        "file": "docker-ce",
        "baseurl": f"{DOCKER}/centos/9/$basearch/stable",
        "gpgkey": f"{DOCKER}/centos/gpg",
    }
    assert rocky["companions"] == []  # dnf installs weak dependencies itself
    arm = _ok(matrix, "ubuntu2404-arm64-cuda")["engine"]
    assert arm["repo"]["architectures"] == ["arm64"] and arm["repo"]["suites"] == ["noble"]
