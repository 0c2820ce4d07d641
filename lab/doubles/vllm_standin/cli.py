"""vLLM's command line, as far as the SOLV roles use it: same flags, same refusals.

Usage as vLLM's image (`vllm serve`): `[MODEL] --model M --served-model-name N ... --port P`.
Flags it does not model are accepted and logged (vLLM has hundreds). Exit 2 for a malformed
flag value (argparse, as vLLM), 1 for a value vLLM's config validation refuses.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys

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
    args.unknown = unknown
    return args


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
    from vllm_standin.server import serve

    return serve(args)
