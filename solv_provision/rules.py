"""The rules a service role's settings must follow, beyond what the argument specs' types can say.

One implementation: the CLI validator calls `role_problems` for every host before any host is contacted,
and each service role's preflight calls the same function through solv_common's `solv_role_problems`
filter (so plain `ansible-playbook` refuses exactly what `solv-provision validate` refuses).

Every rule takes the role's variables as the role sees them (inventory over defaults) and a small context
of facts only the caller knows (the host's own address, the models the gateway serves), and returns
(key, message) pairs. A rule never echoes a secret's value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from solv_provision import addresses, gateway, multinode, spec_check, specs
from solv_provision import models as staged_models
from solv_provision.services import GROUP_ROLES

Problems = list[tuple[str, str]]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_MEMORY = re.compile(r"[0-9]+[bkmgBKMG]?")
_REDIS_SIZE = re.compile(r"[0-9]+(?:[kmg]b?)?", re.IGNORECASE)
# Provider credentials LiteLLM takes in litellm_params: never in plain text in config.yaml.
SECRET_PARAMS = ("api_key", "aws_access_key_id", "aws_secret_access_key", "vertex_credentials", "azure_ad_token")


def role_problems(role: str, values: Mapping[str, Any], context: Mapping[str, Any] | None = None,
                  check_types: bool = True) -> Problems:
    """(key, message) for everything wrong with one host's settings of `role` (empty when fine).

    The argument specs first (spec_check: the types exactly as the role uses them, no coercion, then choices
    and keys; the validator checked them already and passes check_types=False); a variable that fails them
    counts as its default for the role's other rules, so one mistake gives one message."""
    rule = ROLE_RULES.get(role)
    if not rule:
        return []
    typed: Problems = []
    for key in specs.role_specs()[role].options if check_types else ():
        if key in values:
            typed += spec_check.checker().problems(key, values[key])
    wrong = {re.split(r"[\[.]", label, maxsplit=1)[0] for label, _ in typed}
    usable = {key: specs.default(key) if key in wrong else value for key, value in values.items()}
    ctx = dict(context or {})
    if "vllm_models" in wrong:
        ctx["models"] = []
    return typed + rule(usable, ctx)


# --- shared by every service role --------------------------------------------------------------------------


def _container_problems(prefix: str, v: Mapping[str, Any]) -> Problems:
    """Resource limits and extra environment: the same names in every service role (types, empty images and
    timeouts below 1 are value_types' business)."""
    problems: Problems = []
    memory = str(v.get(f"{prefix}_memory_limit") or "")
    if memory and not _MEMORY.fullmatch(memory):
        problems.append((f"{prefix}_memory_limit", f"{memory!r} is not a Docker memory size (e.g. 8g, 512m)"))
    cpus = str(v.get(f"{prefix}_cpu_limit") or "")
    if cpus:
        try:
            ok = float(cpus) > 0
        except ValueError:
            ok = False
        if not ok:
            problems.append((f"{prefix}_cpu_limit", f"{cpus!r} is not a positive number of CPUs (e.g. 4 or 1.5)"))
    problems += _env_problems(f"{prefix}_extra_env", v.get(f"{prefix}_extra_env"))
    return problems


def _env_problems(key: str, env: Any) -> Problems:
    problems: Problems = []
    for name, value in (env or {}).items() if isinstance(env, Mapping) else ():
        if not _ENV_NAME.fullmatch(str(name)):
            problems.append((f"{key}.{name}", "is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"))
        elif isinstance(value, (dict, list)) or any(c in str(value) for c in "\r\n"):
            problems.append((f"{key}.{name}", "must be one line of text (an env file holds nothing else)"))
    return problems


def _bind_problems(key: str, value: Any, own_address: str) -> Problems:
    address = addresses.listen(value or "", own_address)["address"]
    if addresses.is_ip_address(address):
        return []
    origin = "it defaults to the host's solv_internal_address, else ansible_host" if not value else "it is set so"
    return [(key, f"{address!r} is not an IP address ({origin}); Docker publishes ports on an address of the "
                  "host: set solv_internal_address of this host (or this key) to one")]


# --- vLLM --------------------------------------------------------------------------------------------------


def vllm_host_problems(models: list[dict[str, Any]], gpu_mode: str = "auto") -> Problems:
    """(label, message) for what is wrong with one host's vllm_models (defaults applied, types checked)."""
    problems: Problems = []
    names: dict[str, int] = {}
    gpu_users: dict[int, list[dict[str, Any]]] = {}
    for i, m in enumerate(models):
        label = f"vllm_models[{i}] ({m['name']})"
        if m["name"] in names:
            problems.append((label, f"instance name '{m['name']}' is already used by vllm_models[{names[m['name']]}]; "
                                    "names must be unique on a host (they name the systemd unit)"))
        names.setdefault(m["name"], i)
        if not _UNIT_NAME.fullmatch(str(m["name"])):
            problems.append((label, "name may hold only letters, digits, '.', '_' and '-' (it names a systemd unit)"))
        problems += [(label, message) for message in staged_models.model_problems(m["model"], m.get("revision"))]
        util = m.get("gpu_memory_utilization")
        if util is not None and not 0 < float(util) <= 1:
            problems.append((label, f"gpu_memory_utilization {util} must be in (0, 1]"))
        gpus = m["gpus"]
        if len(set(gpus)) != len(gpus):
            problems.append((label, f"gpus {gpus} names a GPU twice"))
        if not gpus and gpu_mode != "none":
            problems.append((label, "gpus is empty: list the GPU indices this instance uses "
                                    "(or set vllm_gpu_mode: none on a host without GPUs)"))
        tp, pp = int(m["tensor_parallel_size"]), int(m["pipeline_parallel_size"])
        if gpus and not m.get("nodes") and tp * pp != len(gpus):  # across hosts: multinode.problems
            problems.append((label, f"tensor_parallel_size {tp} x pipeline_parallel_size {pp} = {tp * pp}, "
                                    f"but {len(gpus)} GPU(s) are given ({gpus}); they must match"))
        for g in set(gpus):
            gpu_users.setdefault(int(g), []).append({"index": i, **m})
    for gpu, users in sorted(gpu_users.items()):
        if len(users) < 2:
            continue
        utils = [u.get("gpu_memory_utilization") for u in users]
        if all(u is not None for u in utils) and sum(float(u) for u in utils) < 1:
            continue
        owners = ", ".join(f"vllm_models[{u['index']}] ({u['name']})" for u in users)
        problems.append((f"vllm_models[{users[-1]['index']}] ({users[-1]['name']})",
                         f"GPU {gpu} is given to {owners}; give each GPU to one instance, or set "
                         "gpu_memory_utilization on each sharer so that they sum below 1"))
    return problems


def vllm_problems(v: Mapping[str, Any], ctx: dict[str, Any]) -> Problems:
    """context: own_address; models (vllm_models normalized, [] when malformed); gpu_mode; store_checked (false
    for `models fetch`, which fills the store: whether the model store holds each staged model); model_store (the
    store apply stages from, models.store_of: vllm_model_store else the bundle's); host, hostvars,
    groups and group_names (models across hosts, solv_provision.multinode)."""
    models = ctx.get("models") or []
    problems = vllm_host_problems(models, ctx.get("gpu_mode") or str(v.get("vllm_gpu_mode") or "auto"))
    if ctx.get("store_checked", True):
        store = ctx.get("model_store", str(v.get("vllm_model_store") or ""))
        problems += staged_models.store_problems(models, store)
    if ctx.get("groups") is not None:  # models across hosts: the host, every host's variables and the groups
        host, hostvars, groups = ctx["host"], ctx["hostvars"], ctx["groups"]
        problems += multinode.problems(host, hostvars, groups, models)
        instances = multinode.host_instances(host, models, hostvars, groups, ctx.get("group_names") or [])
        problems += multinode.follower_problems(host, models, instances, hostvars)
    if models:
        problems += _bind_problems("vllm_bind_address", v.get("vllm_bind_address"), ctx.get("own_address", ""))
    return problems + _container_problems("vllm", v)


# --- LiteLLM -----------------------------------------------------------------------------------------------


def litellm_problems(v: Mapping[str, Any], ctx: dict[str, Any]) -> Problems:
    """context: own_address; served_models (names the vLLM instances serve) and embedding_models (those that are
    embedding models); models_malformed (skip the 'serves nothing' rule while vllm_models are broken elsewhere);
    provider_env_known (false while vaulted); redis (gateway.redis_plan of this host)."""
    problems: Problems = []
    key = str(v.get("litellm_master_key") or "")
    if key and not key.startswith("sk-"):
        problems.append(("litellm_master_key", 'must start with "sk-" (LiteLLM refuses other master keys)'))
    if v.get("litellm_publish"):
        problems += _bind_problems("litellm_bind_address", v.get("litellm_bind_address"), ctx.get("own_address", ""))
    count = v.get("litellm_instances")  # (value_types: at least 1)
    if isinstance(count, int) and count > gateway.MAX_INSTANCES:
        problems.append(("litellm_instances", f"{count} is not between 1 and {gateway.MAX_INSTANCES}"))
    redis = ctx.get("redis") or {}
    if redis.get("runs_here"):
        maxmemory = str(v.get("litellm_redis_maxmemory") or "")
        if not _REDIS_SIZE.fullmatch(maxmemory):
            problems.append(("litellm_redis_maxmemory", f"{maxmemory!r} is not a Redis memory size (e.g. 256mb, 1gb)"))
        own = ctx.get("own_address", "")
        if redis.get("publish") and not addresses.is_ip_address(own):
            problems.append(("litellm_redis_port", f"Redis is published for the other gateway hosts on this host's "
                                                   f"address, and {own!r} is not an IP address: set "
                                                   "solv_internal_address of this host"))
        problems += _container_problems("litellm_redis", v)
    names = set(ctx.get("served_models") or [])
    externals = v.get("litellm_external_models") or []
    provider_env = v.get("litellm_provider_env") or {}
    for i, ext in enumerate(externals if isinstance(externals, list) else []):
        if not isinstance(ext, Mapping) or not isinstance(ext.get("litellm_params"), Mapping):
            continue
        names.add(ext.get("model_name"))
        label = f"litellm_external_models[{i}] ({ext.get('model_name')})"
        problems += _inline_secret_problems(label, ext["litellm_params"], provider_env,
                                            check_env=ctx.get("provider_env_known", True))
    if not names and not ctx.get("models_malformed"):
        problems.append(("litellm_external_models", "LiteLLM would serve no model: no vllm_models on any "
                                                    "'inference' host and no litellm_external_models"))
    problems += _fallback_problems(v.get("litellm_fallbacks") or {}, names, _local_kinds(ctx))
    return problems + _container_problems("litellm", v)


def _local_kinds(ctx: Mapping[str, Any]) -> dict[str, str]:
    """Served name -> 'chat' or 'embedding', for the inventory's vLLM instances (external models: unknown)."""
    embedding = set(ctx.get("embedding_models") or [])
    return {name: "embedding" if name in embedding else "chat" for name in ctx.get("served_models") or []}


def _inline_secret_problems(label: str, params: Mapping[str, Any], provider_env: Any, *, check_env: bool) -> Problems:
    problems: Problems = []
    for pkey in SECRET_PARAMS:
        pval = params.get(pkey)
        if not isinstance(pval, str):
            continue
        if not pval.startswith("os.environ/"):
            problems.append((label, f"litellm_params.{pkey} is written in plain text into config.yaml; give "
                                    "'os.environ/NAME' and put the value (from vault) in litellm_provider_env"))
        elif check_env and isinstance(provider_env, Mapping) and pval.split("/", 1)[1] not in provider_env:
            problems.append((label, f"litellm_params.{pkey} reads {pval} but litellm_provider_env has no "
                                    f"{pval.split('/', 1)[1]}"))
    return problems


def _fallback_problems(fallbacks: Any, names: set, kinds: Mapping[str, str]) -> Problems:
    problems: Problems = []
    if not isinstance(fallbacks, Mapping):
        return problems
    known = ", ".join(sorted(str(n) for n in names if n)) or "none"
    for model, targets in sorted(fallbacks.items()):
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            problems.append((f"litellm_fallbacks.{model}", f"must be a list of model names (got {targets!r}); "
                                                           f"e.g. {model}: [{next(iter(sorted(names)), 'other')}]"))
            continue
        for name in [model, *targets]:
            if name not in names:
                problems.append((f"litellm_fallbacks.{model}", f"'{name}' is not a model LiteLLM serves (known: {known})"))
        for name in targets:
            if name in kinds and model in kinds and kinds[name] != kinds[model]:
                problems.append((f"litellm_fallbacks.{model}", f"'{name}' is {_KIND_WORDS[kinds[name]]}, '{model}' "
                                                               f"{_KIND_WORDS[kinds[model]]}: a fallback must "
                                                               "answer the same kind of request"))
    return problems


_KIND_WORDS = {"chat": "a chat model", "embedding": "an embedding model (runner: pooling)"}


# --- SearXNG -----------------------------------------------------------------------------------------------


def searxng_problems(v: Mapping[str, Any], ctx: dict[str, Any]) -> Problems:
    problems: Problems = []
    if "json" not in (v.get("searxng_formats") or []):
        problems.append(("searxng_formats", "must contain json (Open WebUI asks for it; SearXNG answers 403 without)"))
    if v.get("searxng_limiter") and not v.get("searxng_valkey_url"):
        problems.append(("searxng_valkey_url", "is needed while searxng_limiter is on"))
    base = str(v.get("searxng_base_url") or "")
    if base and not re.match(r"https?://", base):
        problems.append(("searxng_base_url", f"{base!r} must start with http:// or https://"))
    for i, engine in enumerate(v.get("searxng_engines") or []):
        if not isinstance(engine, Mapping) or not engine.get("name"):
            problems.append((f"searxng_engines[{i}]", "needs a name (entries merge by name over SearXNG's engines)"))
    if v.get("searxng_publish"):
        problems += _bind_problems("searxng_bind_address", v.get("searxng_bind_address"), ctx.get("own_address", ""))
    settings = v.get("searxng_settings") or {}
    server = settings.get("server") if isinstance(settings, Mapping) else None
    if isinstance(server, Mapping) and "secret_key" in server:
        problems.append(("searxng_settings.server.secret_key", "settings.yml is world-readable: set "
                                                              "searxng_secret_key (from vault) instead"))
    return problems + _container_problems("searxng", v)


# --- Open WebUI --------------------------------------------------------------------------------------------

# Open WebUI's own rule (utils/misc.py validate_email_format): sign-in refuses other forms.
_EMAIL = re.compile(r"[^@]+@localhost|[^@]+@[^@]+\.[^@]+")


def openwebui_problems(v: Mapping[str, Any], ctx: dict[str, Any]) -> Problems:
    """context: own_address; served_models and embedding_models (as for LiteLLM)."""
    problems: Problems = []
    if v.get("openwebui_publish"):
        problems += _bind_problems("openwebui_bind_address", v.get("openwebui_bind_address"), ctx.get("own_address", ""))
    base_url = str(v.get("openwebui_openai_api_base_url") or "")
    if base_url and not re.match(r"https?://", base_url):
        problems.append(("openwebui_openai_api_base_url", "must start with http:// or https:// (or be empty: this "
                                                          "host's LiteLLM)"))
    if v.get("openwebui_web_search") and "<query>" not in str(v.get("openwebui_searxng_query_url") or ""):
        problems.append(("openwebui_searxng_query_url", "must contain <query> (Open WebUI puts the search there)"))
    problems += _openwebui_model_problems(v, _local_kinds(ctx))
    email = str(v.get("openwebui_admin_email") or "")
    if not _EMAIL.fullmatch(email) or email != email.lower():
        problems.append(("openwebui_admin_email", f"{email!r} must look like name@domain.tld or name@localhost, "
                                                  "in lower case (Open WebUI's sign-in refuses other forms)"))
    if len(str(v.get("openwebui_admin_password") or "").encode("utf-8")) > 72:
        problems.append(("openwebui_admin_password", "is longer than 72 bytes: bcrypt refuses it and the admin "
                                                     "would silently not be created"))
    return problems + _container_problems("openwebui", v)


def openwebui_rag(engine: str, model: str, embedding_models: Iterable[str]) -> dict[str, str]:
    """Open WebUI's document embeddings {engine, model}: `auto` is openai when the inventory serves an embedding
    model, else bypass; openai without a model takes the inventory's first embedding model."""
    embedding = sorted(embedding_models)
    if engine == "auto":
        engine = "openai" if embedding else "bypass"
    if engine == "openai" and not model:
        model = embedding[0] if embedding else ""
    return {"engine": engine, "model": model if engine != "bypass" else ""}


def _openwebui_model_problems(v: Mapping[str, Any], kinds: Mapping[str, str]) -> Problems:
    problems: Problems = []
    embedding = sorted(name for name, kind in kinds.items() if kind == "embedding")
    rag = openwebui_rag(str(v.get("openwebui_rag_embedding_engine") or "auto"),
                        str(v.get("openwebui_rag_embedding_model") or ""), embedding)
    engine, rag_model = rag["engine"], rag["model"]
    if engine == "openai" and not rag_model:
        problems.append(("openwebui_rag_embedding_model", "is needed with openwebui_rag_embedding_engine: openai "
                                                          "(no vllm_models entry has runner: pooling)"))
    if engine == "openai" and kinds.get(rag_model) == "chat":
        problems.append(("openwebui_rag_embedding_model", f"'{rag_model}' is a chat model; documents need an "
                                                          f"embedding model (runner: pooling){_known(embedding)}"))
    defaults = v.get("openwebui_default_models") or []
    for i, name in enumerate(defaults if isinstance(defaults, list) else []):
        if kinds.get(name) == "embedding":
            problems.append((f"openwebui_default_models[{i}]", f"'{name}' is an embedding model; the default "
                                                               "chat model must be a chat model"))
    return problems


def _known(names: list[str]) -> str:
    return f"; the inventory's: {', '.join(names)}" if names else ""


# --- Caddy (the entry point) -------------------------------------------------------------------------------

# A Caddyfile site address: a DNS name or an IP address, nothing that could end the address list or a block.
_SERVER_NAME = re.compile(r"[A-Za-z0-9*]([A-Za-z0-9.*-]*[A-Za-z0-9])?|[0-9A-Fa-f:.]+")
_CADDY_SIZE = re.compile(r"[0-9]+(\.[0-9]+)?\s*([KMGT]i?B|B)?", re.IGNORECASE)


def caddy_problems(v: Mapping[str, Any], ctx: dict[str, Any]) -> Problems:
    problems: Problems = []
    problems += _bind_problems("caddy_bind_address", v.get("caddy_bind_address"), ctx.get("own_address", ""))
    if v.get("caddy_https_port") == v.get("caddy_http_port"):
        problems.append(("caddy_http_port", "must differ from caddy_https_port"))
    for i, name in enumerate(v.get("caddy_server_names") or []):
        if not _SERVER_NAME.fullmatch(str(name)):
            problems.append((f"caddy_server_names[{i}]", f"{name!r} is not a DNS name or an IP address"))
    cert, key = str(v.get("caddy_tls_certificate") or ""), str(v.get("caddy_tls_key") or "")
    if bool(cert) != bool(key):
        problems.append(("caddy_tls_key" if cert else "caddy_tls_certificate",
                         "is needed too: give the certificate and its key, or neither (the private CA's)"))
    if cert and "-----BEGIN CERTIFICATE-----" not in cert:
        problems.append(("caddy_tls_certificate", "is not a PEM certificate (-----BEGIN CERTIFICATE-----)"))
    if key and not re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", key):
        problems.append(("caddy_tls_key", "is not a PEM private key (-----BEGIN ... PRIVATE KEY-----)"))
    size = str(v.get("caddy_max_request_body") or "")
    if not _CADDY_SIZE.fullmatch(size):
        problems.append(("caddy_max_request_body", f"{size!r} is not a size (e.g. 100MB)"))
    return problems + _container_problems("caddy", v)


def registry_problems(v: Mapping[str, Any], ctx: dict[str, Any]) -> Problems:
    return _container_problems("registry", v)


# --- monitoring --------------------------------------------------------------------------------------------

# Prometheus's duration and size formats (its docs: configuration, <duration> and storage.tsdb.retention.size).
_DURATION = re.compile(r"(?=\d)(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?")
_PROMETHEUS_SIZE = re.compile(r"[0-9]+(B|KB|MB|GB|TB|PB|EB)")


def node_exporter_problems(v: Mapping[str, Any], ctx: dict[str, Any]) -> Problems:
    return (_bind_problems("node_exporter_bind_address", v.get("node_exporter_bind_address"), ctx.get("own_address", ""))
            + _container_problems("node_exporter", v))


def dcgm_exporter_problems(v: Mapping[str, Any], ctx: dict[str, Any]) -> Problems:
    return (_bind_problems("dcgm_exporter_bind_address", v.get("dcgm_exporter_bind_address"), ctx.get("own_address", ""))
            + _container_problems("dcgm_exporter", v))


def blackbox_exporter_problems(v: Mapping[str, Any], ctx: dict[str, Any]) -> Problems:
    problems = _bind_problems("blackbox_exporter_bind_address", v.get("blackbox_exporter_bind_address"),
                              ctx.get("own_address", ""))
    timeout = str(v.get("blackbox_exporter_probe_timeout") or "")
    if timeout and not _DURATION.fullmatch(timeout):
        problems.append(("blackbox_exporter_probe_timeout", f"{timeout!r} is not a duration (e.g. 5s)"))
    return problems + _container_problems("blackbox_exporter", v)


def prometheus_problems(v: Mapping[str, Any], ctx: dict[str, Any]) -> Problems:
    problems = _bind_problems("prometheus_bind_address", v.get("prometheus_bind_address"), ctx.get("own_address", ""))
    for key in ("prometheus_scrape_interval", "prometheus_evaluation_interval", "prometheus_retention_time",
                "prometheus_alert_for"):
        value = str(v.get(key) or "")
        if not _DURATION.fullmatch(value):
            problems.append((key, f"{value!r} is not a Prometheus duration (e.g. 30s, 5m, 15d, 1h30m)"))
    size = str(v.get("prometheus_retention_size") or "")
    if size and not _PROMETHEUS_SIZE.fullmatch(size):
        problems.append(("prometheus_retention_size", f"{size!r} is not a Prometheus size (e.g. 500MB, 50GB)"))
    percent = v.get("prometheus_alert_gpu_memory_percent")
    if isinstance(percent, int) and not 1 <= percent <= 100:
        problems.append(("prometheus_alert_gpu_memory_percent", f"{percent} is not a percentage (1-100)"))
    for key in ("prometheus_alert_gateway_error_ratio", "prometheus_alert_team_budget_ratio"):
        ratio = v.get(key)
        if isinstance(ratio, (int, float)) and not isinstance(ratio, bool) and not 0 < ratio < 1:
            problems.append((key, f"{ratio} is not a share between 0 and 1 (e.g. 0.05 for 5 %)"))
    ttft = v.get("prometheus_alert_vllm_ttft_p95_seconds")
    if isinstance(ttft, (int, float)) and not isinstance(ttft, bool) and ttft <= 0:
        problems.append(("prometheus_alert_vllm_ttft_p95_seconds", f"{ttft} must be more than 0 seconds"))
    for i, job in enumerate(v.get("prometheus_extra_scrape_configs") or []):
        if isinstance(job, Mapping) and not isinstance(job.get("job_name"), str):
            problems.append((f"prometheus_extra_scrape_configs[{i}]", "needs a job_name (Prometheus's scrape_config)"))
    return problems + _container_problems("prometheus", v)


def alertmanager_problems(v: Mapping[str, Any], ctx: dict[str, Any]) -> Problems:
    problems = _bind_problems("alertmanager_bind_address", v.get("alertmanager_bind_address"), ctx.get("own_address", ""))
    retention = str(v.get("alertmanager_retention") or "")
    if not _DURATION.fullmatch(retention):
        problems.append(("alertmanager_retention", f"{retention!r} is not a duration (e.g. 120h, 5d)"))
    names: list[str] = []
    for i, receiver in enumerate(v.get("alertmanager_receivers") or []):
        name = receiver.get("name") if isinstance(receiver, Mapping) else None
        if not isinstance(name, str) or not name:
            problems.append((f"alertmanager_receivers[{i}]", "needs a name (Alertmanager's receiver format)"))
        elif name in names:
            problems.append((f"alertmanager_receivers[{i}] ({name})", "is named twice"))
        else:
            names.append(name)
    problems += [(f"alertmanager_route{where}", message) for where, message in
                 _route_problems(v.get("alertmanager_route") or {}, names or ["none"])]
    return problems + _container_problems("alertmanager", v)


def _route_problems(route: Any, receivers: list[str], where: str = "") -> Problems:
    """Every receiver the routing tree names is one of alertmanager_receivers (Alertmanager refuses it otherwise)."""
    if not isinstance(route, Mapping):
        return [(where, "must be a mapping (Alertmanager's route format)")]
    problems: Problems = []
    receiver = route.get("receiver")
    if receiver is not None and receiver not in receivers:
        problems.append((f"{where}.receiver", f"{receiver!r} is not one of alertmanager_receivers "
                                              f"({', '.join(receivers)})"))
    for i, child in enumerate(route.get("routes") or []):
        problems += _route_problems(child, receivers, f"{where}.routes[{i}]")
    return problems


# The role gives Grafana the admin password as a file (GF_SECURITY_ADMIN_PASSWORD__FILE); its image refuses to
# start when the plain variable is set too.
_GRAFANA_OWN_ENV = ("GF_SECURITY_ADMIN_PASSWORD", "GF_SECURITY_ADMIN_PASSWORD__FILE")


def grafana_problems(v: Mapping[str, Any], ctx: dict[str, Any]) -> Problems:
    problems = _bind_problems("grafana_bind_address", v.get("grafana_bind_address"), ctx.get("own_address", ""))
    env = v.get("grafana_extra_env")
    for name in _GRAFANA_OWN_ENV:
        if isinstance(env, Mapping) and name in env:
            problems.append((f"grafana_extra_env.{name}", "is the role's: set grafana_admin_password (vault) instead; "
                                                          "Grafana gets it as a file"))
    if any(c in str(v.get("grafana_admin_password") or "") for c in "\r\n"):
        problems.append(("grafana_admin_password", "must be one line (Grafana reads it from a file and "
                                                   "drops trailing line ends)"))
    return problems + _container_problems("grafana", v)


def site_problems(v: Mapping[str, Any], ctx: dict[str, Any]) -> Problems:
    """solv_common's site-wide settings, which every service role's containers are made of: the folders absolute,
    the Docker CLI an absolute path, the readiness probes' longest pause a positive number of seconds, the network
    a name Docker takes (its types and ranges: value_types)."""
    problems: Problems = []
    for key in ("solv_root_dir", "solv_systemd_dir"):
        if isinstance(v.get(key), str) and not re.match(r"/.", v[key]):
            problems.append((key, f"must be an absolute path below / (e.g. /opt/solv), got {v[key]!r}"))
    if isinstance(v.get("solv_docker_bin"), str) and not v["solv_docker_bin"].startswith("/"):
        problems.append(("solv_docker_bin",
                         f"must be an absolute path (e.g. /usr/bin/docker), got {v['solv_docker_bin']!r}"))
    delay = v.get("solv_container_ready_delay")
    if isinstance(delay, (int, float)) and not isinstance(delay, bool) and not 0 < delay <= 60:
        problems.append(("solv_container_ready_delay", f"must be more than 0 and at most 60 (seconds), got {delay}"))
    network = v.get("solv_docker_network")
    if isinstance(network, str) and not _UNIT_NAME.fullmatch(network):
        problems.append(("solv_docker_network", "must be a Docker network name (letters, digits, '_', '.', '-', "
                                                f"starting with a letter or digit), got {network!r}"))
    return problems


ROLE_RULES: dict[str, Callable[[Mapping[str, Any], dict[str, Any]], Problems]] = {
    "solv_common": site_problems,
    "vllm": vllm_problems,
    "litellm": litellm_problems,
    "searxng": searxng_problems,
    "openwebui": openwebui_problems,
    "caddy": caddy_problems,
    "registry": registry_problems,
    "node_exporter": node_exporter_problems,
    "dcgm_exporter": dcgm_exporter_problems,
    "blackbox_exporter": blackbox_exporter_problems,
    "prometheus": prometheus_problems,
    "alertmanager": alertmanager_problems,
    "grafana": grafana_problems,
}



def roles_of(groups: Iterable[str]) -> list[str]:
    """The service roles a host in these groups runs, in playbook order."""
    member_of = set(groups)
    return [role for group, roles in GROUP_ROLES.items() if group in member_of for role in roles]
