"""vLLM role filters: an instance's image, command line and GPU options.

Input entries are already normalized by solv_vllm_models (served_model_name, parallel sizes).
"""

from __future__ import annotations


def vllm_instance_image(instance, image, tag, archive=""):
    """{ref, archive} of the image one instance runs: its own image/image_tag, else the host's. The host's
    archive holds the host's image only, so an instance with another image has its own archive or none."""
    ref = f"{instance.get('image') or image}:{instance.get('image_tag') or tag}"
    own = instance.get("image_archive")
    return {"ref": ref, "archive": own if own else (archive if ref == f"{image}:{tag}" else "")}


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
    # vLLM's default runner is auto (from the model's architecture); SOLV names pooling (an embedding model)
    # explicitly, since routing depends on it, and leaves a chat model's command line as it was.
    if instance.get("runner") == "pooling":
        args += ["--runner", "pooling"]
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


class FilterModule:
    def filters(self):
        return {
            "vllm_instance_image": vllm_instance_image,
            "vllm_command_args": vllm_command_args,
            "vllm_gpu_args": vllm_gpu_args,
        }
