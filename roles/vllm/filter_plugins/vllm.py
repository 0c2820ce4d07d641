"""vLLM role filters: an instance's command line and GPU options, host-local sanity checks.

Input entries are already normalized by solv_vllm_models (served_model_name, parallel sizes).
"""

from __future__ import annotations

import re

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def vllm_command_args(instance):
    """vLLM arguments of one instance (after the image; the image's entrypoint is `vllm serve`)."""
    port = int(instance["port"])
    args = [
        "--model", str(instance["model"]),
        "--served-model-name", str(instance["served_model_name"]),
        "--host", "0.0.0.0",
        "--port", str(port),
        "--tensor-parallel-size", str(int(instance["tensor_parallel_size"])),
        "--pipeline-parallel-size", str(int(instance["pipeline_parallel_size"])),
    ]
    if instance.get("gpu_memory_utilization") is not None:
        args += ["--gpu-memory-utilization", str(float(instance["gpu_memory_utilization"]))]
    if instance.get("max_model_len") is not None:
        args += ["--max-model-len", str(instance["max_model_len"])]
    if instance.get("quantization"):
        args += ["--quantization", str(instance["quantization"])]
    args += [str(a) for a in instance.get("extra_args") or []]
    return args


def vllm_gpu_args(instance, mode):
    """docker run options that give the instance its GPUs (mode cdi, gpus or none)."""
    gpus = [int(g) for g in instance.get("gpus") or []]
    if mode == "cdi":
        out = []
        for g in gpus:
            out += ["--device", f"nvidia.com/gpu={g}"]
        return out
    if mode == "gpus":
        return ["--gpus", '"device=' + ",".join(str(g) for g in gpus) + '"']
    return []


def vllm_host_problems(instances, mode="none"):
    """What is wrong with one host's (normalized) vllm_models, as sentences; empty when fine."""
    problems = []
    names, ports = {}, {}
    usage = {}
    for inst in instances:
        name = str(inst.get("name", ""))
        if not _NAME.fullmatch(name):
            problems.append(f"instance name {name!r}: use letters, digits, '.', '_' and '-' (unit solv-vllm-<name>)")
        if name in names:
            problems.append(f"instance name {name!r} appears twice")
        names[name] = True
        port = inst.get("port")
        try:
            port = int(port)
            if not 0 < port < 65536:
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f"{name}: port {inst.get('port')!r} is not a port number")
            continue
        if port in ports:
            problems.append(f"{name}: port {port} is also used by {ports[port]}")
        ports[port] = name
        size = int(inst["tensor_parallel_size"]) * int(inst["pipeline_parallel_size"])
        gpus = list(inst.get("gpus") or [])
        if mode != "none" and not gpus:
            problems.append(f"{name}: gpus is empty; list the GPU indexes (or set vllm_gpu_mode: none)")
        if mode != "none" and gpus and size != len(gpus):
            problems.append(
                f"{name}: tensor_parallel_size x pipeline_parallel_size = {size}, but gpus lists {len(gpus)}"
            )
        if len(set(gpus)) != len(gpus):
            problems.append(f"{name}: gpus lists a GPU twice: {gpus}")
        util = inst.get("gpu_memory_utilization")
        util = 0.9 if util is None else float(util)
        if not 0 < util <= 1:
            problems.append(f"{name}: gpu_memory_utilization {util} must be in (0, 1]")
        for g in gpus:
            usage.setdefault(g, []).append((name, util))
    if mode != "none":
        for g, users in sorted(usage.items()):
            total = sum(u for _, u in users)
            if len(users) > 1 and total > 1.0 + 1e-9:
                listed = ", ".join(f"{n} {u}" for n, u in users)
                problems.append(
                    f"GPU {g} is shared by {listed}: gpu_memory_utilization sums to {total:.2f} > 1 "
                    "(vLLM's default is 0.9; set it on each sharing instance)"
                )
    return problems


class FilterModule:
    def filters(self):
        return {
            "vllm_command_args": vllm_command_args,
            "vllm_gpu_args": vllm_gpu_args,
            "vllm_host_problems": vllm_host_problems,
        }
