"""Ansible filters over the project's Python rules: role settings, addresses, shared secrets.

Each filter calls the one implementation in solv_provision (the CLI validator calls the same functions),
so a role's preflight refuses exactly what `solv-provision validate` refuses.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from solv_provision import addresses, bundle, models, registry, rules, secrets, specs
except ImportError:  # plain ansible-playbook from a checkout, package not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from solv_provision import addresses, bundle, models, registry, rules, secrets, specs


def solv_role_variables(role):
    """{{ 'vllm' | solv_role_variables }}: the role's inventory variables (argument spec, entry point main)."""
    return sorted(specs.role_specs()[role].options)


def solv_role_problems(role, values, context=None):
    """{{ 'vllm' | solv_role_problems(query('vars', *names, default=None), {...}) }} -> ['key: message', ...].

    values: the role's variables in the order of solv_role_variables (a list), or a dict.
    """
    if not isinstance(values, dict):
        values = dict(zip(solv_role_variables(role), values))
    return [f"{key}: {message}" for key, message in rules.role_problems(role, values, context)]


def solv_openwebui_rag(engine, model, embedding_models):
    """{{ openwebui_rag_embedding_engine | solv_openwebui_rag(model, embedding_names) }} -> {engine, model}."""
    return rules.openwebui_rag(engine, model or "", embedding_models or [])


def solv_listen(bind_address, own_address):
    """{{ vllm_bind_address | solv_listen(inventory_hostname | solv_host_address(hostvars)) }}
    -> {address, publish, probe}."""
    return addresses.listen(bind_address, own_address)


def solv_image_archive(archive, bundle_dir, image=""):
    """{{ archive | solv_image_archive(solv_bundle_dir, image) }}: the offline bundle's images.tar when it holds the
    image, else the image's own archive (see solv_provision.bundle.image_archive)."""
    return bundle.image_archive(archive or "", bundle_dir or "", image or "")


def solv_host_archives(hostvars, host, groups, bundle_dir=""):
    """{{ hostvars | solv_host_archives(inventory_hostname, groups, solv_bundle_dir) }} -> [{archive, images}]: what
    the host's roles will load, in play order (see solv_provision.bundle.host_archives)."""
    return bundle.host_archives(host, hostvars, groups, bundle_dir or "")


def solv_model_store(store, bundle_dir):
    """{{ vllm_model_store | solv_model_store(solv_bundle_dir) }}: the model store apply stages from."""
    return models.store_of(store or "", bundle_dir or "")


def solv_site_registry(hostvars, groups):
    """{{ hostvars | solv_site_registry(groups) }} -> 'address:port' of the `registry` group's host, or ''."""
    return registry.site_address(hostvars, groups)


def solv_secret_plan(wanted, host, hostvars, groups, root_dir, render=False, files=None):
    """What solv_common's secrets.yml reads where (see solv_provision.secrets.secret_plan)."""
    return secrets.secret_plan(wanted, host=host, hostvars=hostvars, groups=groups, root_dir=root_dir,
                               render=bool(render), files=files)


def solv_secret_files(earlier, read_results):
    """{{ __solv_secret_files | solv_secret_files(read.results) }}: owner => secret files read in this run."""
    return secrets.files_read(earlier or {}, read_results or [])


def solv_secrets_collect(plan, read_results):
    return secrets.collect(plan, read_results or [])


class FilterModule:
    def filters(self):
        return {
            "solv_role_variables": solv_role_variables,
            "solv_role_problems": solv_role_problems,
            "solv_listen": solv_listen,
            "solv_image_archive": solv_image_archive,
            "solv_host_archives": solv_host_archives,
            "solv_model_store": solv_model_store,
            "solv_site_registry": solv_site_registry,
            "solv_openwebui_rag": solv_openwebui_rag,
            "solv_secret_plan": solv_secret_plan,
            "solv_secret_files": solv_secret_files,
            "solv_secrets_collect": solv_secrets_collect,
        }
