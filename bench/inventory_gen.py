"""A large plain-YAML inventory for the scale benchmarks: N inference hosts x 4 vLLM instances, 1 gateway.

    python bench/inventory_gen.py DIR --hosts 1000

Laid out as users lay out big sites: hosts.yml (groups, addresses), group_vars (shared settings), host_vars/<host>.yml
(each host's models; four served names shared by all hosts, so LiteLLM gets four load-balanced groups).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

MODELS = [("qwen-coder", "Qwen/Qwen2.5-Coder-7B-Instruct"), ("llama-8b", "meta-llama/Llama-3.1-8B-Instruct"),
          ("mistral-7b", "mistralai/Mistral-7B-Instruct-v0.3"), ("phi-mini", "microsoft/Phi-3.5-mini-instruct")]


def write(root: Path, hosts: int) -> Path:
    (root / "group_vars").mkdir(parents=True, exist_ok=True)
    (root / "host_vars").mkdir(exist_ok=True)
    inference = {f"gpu-{i:04d}": {"ansible_host": f"10.{20 + i // 62500}.{i // 250 % 250}.{i % 250 + 1}"}
                 for i in range(hosts)}
    doc = {"all": {"children": {"inference": {"hosts": inference},
                                "gateway": {"hosts": {"gw-1": {"ansible_host": "10.19.0.10"}}}},
                   "vars": {"ansible_user": "ops", "ansible_become": True}}}
    (root / "hosts.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (root / "group_vars" / "inference.yml").write_text(yaml.safe_dump(
        {"nvidia_driver_branch": "580", "vllm_image_tag": "v0.11.0", "vllm_start_timeout": 900}))
    (root / "group_vars" / "gateway.yml").write_text(yaml.safe_dump(
        {"litellm_fallbacks": {"qwen-coder": ["llama-8b"]}}))
    for i, name in enumerate(inference):
        models = [{"name": served, "model": repo, "gpus": [g], "port": 8001 + g, "max_model_len": 16384,
                   "served_model_name": served} for g, (served, repo) in enumerate(MODELS)]
        (root / "host_vars" / f"{name}.yml").write_text(yaml.safe_dump({"vllm_models": models}, sort_keys=False))
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--hosts", type=int, default=1000)
    args = ap.parse_args()
    print(write(args.dir, args.hosts))


if __name__ == "__main__":
    main()
