"""vLLM's command line, as far as the SOLV roles use it: same flags, same refusals.

Usage as vLLM's image (`vllm serve`): `[MODEL] --model M --served-model-name N ... --port P`.
Flags it does not model are accepted and logged (vLLM has hundreds). Exit 2 for a malformed
flag value (argparse, as vLLM), 1 for a value vLLM's config validation refuses.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from pathlib import Path

log = logging.getLogger("vllm_standin")

# vllm.model_executor.layers.quantization.QuantizationMethods (2026).
QUANTIZATION_METHODS = (
    "awq", "fp8", "fbgemm_fp8", "fp_quant", "modelopt", "modelopt_fp4", "modelopt_mxfp8",
    "modelopt_mixed", "gguf", "gptq_marlin", "awq_marlin", "gptq", "compressed-tensors",
    "bitsandbytes", "experts_int8", "quark", "moe_wna16", "torchao", "inc", "mxfp4",
    "gpt_oss_mxfp4", "cpu_awq", "online", "fp8_per_tensor", "fp8_per_block",
    "int8_per_channel_weight_only", "mxfp8",
)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _model_len(text: str) -> int:
    """vLLM accepts human-readable lengths: 4096, 32k, 32K (x1000 / x1024), 1m."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmM]?)", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"invalid length {text!r}")
    scale = {"": 1, "k": 1000, "K": 1024, "m": 1_000_000, "M": 1024 * 1024}[m.group(2)]
    value = int(float(m.group(1)) * scale)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vllm serve", description="vLLM stand-in (lab only)")
    p.add_argument("--model")
    p.add_argument("--served-model-name", nargs="+")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", nargs="+", default=None)
    p.add_argument("--tensor-parallel-size", "-tp", type=_positive_int, default=1)
    p.add_argument("--pipeline-parallel-size", "-pp", type=_positive_int, default=1)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    p.add_argument("--max-model-len", type=_model_len, default=None)
    p.add_argument("--max-num-seqs", type=_positive_int, default=None)
    p.add_argument("--quantization", "-q", choices=QUANTIZATION_METHODS, default=None)
    # vLLM's runner (pooling: an embedding model, /v1/embeddings only) and model conversion. The stand-in's
    # models are chat models, so auto means generate.
    p.add_argument("--runner", choices=("auto", "draft", "generate", "pooling"), default="auto")
    p.add_argument("--convert", choices=("auto", "none", "embed", "classify"), default="auto")
    # Native multi-node (vllm.config.ParallelConfig): ranks, the head's address, followers without the API.
    p.add_argument("--nnodes", type=_positive_int, default=1)
    p.add_argument("--node-rank", type=int, default=0)
    p.add_argument("--master-addr", default="127.0.0.1")
    p.add_argument("--master-port", type=int, default=29501)
    p.add_argument("--headless", action="store_true")
    p.add_argument("--broken", action="store_true",
                   help="stand-in only: fail at start like an engine that cannot load (the -broken image)")
    return p


class ConfigError(ValueError):
    """A value vLLM's config validation refuses (exit 1, as vLLM's pydantic errors)."""


def parse(argv: list[str]) -> argparse.Namespace:
    # `vllm serve MODEL [flags]`: the positional model, when given, comes first.
    model_tag = argv[0] if argv and not argv[0].startswith("-") else None
    args, unknown = parser().parse_known_args(argv[1:] if model_tag else argv)
    if model_tag and args.model and model_tag != args.model:
        raise ConfigError(f"model given twice: positional {model_tag!r} and --model {args.model!r}")
    args.model = args.model or model_tag
    if not args.model:
        raise ConfigError("no model: pass --model or a positional model")
    if not 0 < args.gpu_memory_utilization <= 1:
        raise ConfigError(
            f"gpu_memory_utilization must be in (0, 1], got {args.gpu_memory_utilization}")
    if not 0 < args.port < 65536:
        raise ConfigError(f"port out of range: {args.port}")
    if args.api_key is None and os.environ.get("VLLM_API_KEY"):
        args.api_key = [os.environ["VLLM_API_KEY"]]
    args.served_model_name = args.served_model_name or [args.model]
    if args.convert in ("embed", "classify") and args.runner not in ("auto", "pooling"):
        raise ConfigError(f"--convert {args.convert} needs the pooling runner, got --runner {args.runner}")
    args.pooling = args.runner == "pooling" or args.convert in ("embed", "classify")
    if not 0 <= args.node_rank < args.nnodes:
        raise ConfigError(f"node_rank {args.node_rank} must be in [0, nnodes={args.nnodes})")
    if args.headless != (args.node_rank > 0):
        raise ConfigError("--headless is for the followers (node rank > 0); rank 0 serves the API")
    args.unknown = unknown
    return args


def load_weights(model: str) -> str:
    """What vLLM's loader needs before it serves: a directory (an absolute path) with config.json and safetensors
    weights whose headers parse; a repository id with HF_HUB_OFFLINE=1 already in the Hugging Face cache (else
    it would download). Returns what was read; raises ConfigError as vLLM fails to start."""
    if model.startswith("/"):
        root = Path(model)
        if not (root / "config.json").is_file():
            raise ConfigError(f"{model} is not a model directory: no config.json (HFValidationError: Repo id must be "
                              f"in the form 'repo_name' or 'namespace/repo_name': '{model}')")
        json.loads((root / "config.json").read_text())
        shards = sorted(root.glob("*.safetensors"))
        if not shards:
            raise ConfigError(f"Cannot find any model weights with `{model}`")
        tensors = sum(_safetensors_count(p) for p in shards)
        return f"{tensors} tensors from {len(shards)} safetensors file(s) in {model}"
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        hub = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface") / "hub"
        if not list((hub / f"models--{model.replace('/', '--')}" / "snapshots").glob("*/config.json")):
            raise ConfigError(f"We couldn't connect to 'https://huggingface.co' to load the files of {model}, and "
                              "couldn't find them in the cached files (HF_HUB_OFFLINE=1)")
        return f"{model} from the Hugging Face cache"
    return f"{model} (a download from the Hub, simulated)"


def _safetensors_count(path: Path) -> int:
    with path.open("rb") as f:
        size = int.from_bytes(f.read(8), "little")
        try:
            header = json.loads(f.read(size))
        except ValueError as err:
            raise ConfigError(f"{path}: safetensors header is not valid JSON: {err}") from err
    return len([k for k in header if k != "__metadata__"])


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(asctime)s %(name)s: %(message)s")
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
    except ConfigError as err:
        log.error("ValueError: %s", err)
        return 1
    if args.unknown:
        log.warning("stand-in ignores these arguments: %s", " ".join(args.unknown))
    if args.broken:
        log.error("RuntimeError: Engine core initialization failed (stand-in built broken)")
        return 1
    try:
        log.info("loading weights: %s", load_weights(args.model))
    except ConfigError as err:
        log.error("OSError: %s", err)
        return 1
    if args.nnodes > 1:
        import signal

        from vllm_standin import group

        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        if args.headless:
            group.follower_join(args.master_addr, args.master_port, args.node_rank, args.nnodes)
            return 1
        group.head_wait(args.master_addr, args.master_port, args.nnodes)
    from vllm_standin.server import serve

    return serve(args)
