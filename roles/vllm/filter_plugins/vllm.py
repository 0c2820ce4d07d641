"""vLLM role filters: an instance's image, staged model, command line and GPU options.

Input entries are already normalized by solv_vllm_models (served_model_name, parallel sizes).
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from solv_provision import models as staged_models
    from solv_provision import routing
except ImportError:  # plain ansible-playbook from a checkout, package not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from solv_provision import models as staged_models
    from solv_provision import routing


def vllm_instance_image(instance, image, tag, archive=""):
    """{ref, archive} of the image one instance runs (solv_provision.routing.instance_image)."""
    return routing.instance_image(instance, image, tag, archive)


def vllm_staged(instances, store):
    """{instance name: {relpath, digest}} for the instances whose model is staged from the model store (the
    digest of the store's manifest; none while the store lacks the model, which preflight refuses)."""
    out = {}
    for instance in instances:
        ref = staged_models.staged_ref(instance, store)
        if ref:
            manifest = staged_models.read_manifest(Path(store) / ref.relpath)
            out[instance["name"]] = {"relpath": ref.relpath,
                                     "digest": staged_models.manifest_digest(manifest) if manifest else None}
    return out


def vllm_command_args(instance, staged=None, host=""):
    """vLLM arguments of one instance (after the image; the image's entrypoint is `vllm serve`). A staged model
    is read from its directory under /models; a repository id downloads at its revision. `host`: the address the
    API listens on (a model across hosts runs in the host's network; else 0.0.0.0 in the container)."""
    port = int(instance["port"])
    mine = (staged or {}).get(instance["name"])
    if mine:
        model = ["--model", f"{staged_models.CONTAINER_DIR}/{mine['relpath']}"]
    else:
        model = ["--model", str(instance["model"])]
        if instance.get("revision"):
            model += ["--revision", str(instance["revision"])]
    args = [
        *model,
        "--served-model-name", str(instance["served_model_name"]),
        "--host", str(host or "0.0.0.0"),
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
    # vLLM's default runner is auto (from the model's architecture); SOLV names pooling (an embedding model)
    # explicitly, since routing depends on it, and leaves a chat model's command line as it was.
    if instance.get("runner") == "pooling":
        args += ["--runner", "pooling"]
    if instance.get("nnodes"):  # a model across hosts (solv_provision.multinode)
        args += ["--nnodes", str(instance["nnodes"]), "--node-rank", str(instance["node_rank"]),
                 "--master-addr", str(instance["master_addr"]), "--master-port", str(instance["master_port"])]
        if int(instance["node_rank"]) > 0:
            args.append("--headless")
    args += [str(a) for a in instance.get("extra_args") or []]
    return args


def vllm_serving(instances):
    """The instances that serve the API here: all but the followers of models across hosts."""
    return [i for i in instances if not int(i.get("node_rank") or 0)]


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


class FilterModule:
    def filters(self):
        return {
            "vllm_instance_image": vllm_instance_image,
            "vllm_staged": vllm_staged,
            "vllm_serving": vllm_serving,
            "vllm_command_args": vllm_command_args,
            "vllm_gpu_args": vllm_gpu_args,
        }
