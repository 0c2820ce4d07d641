"""solv_yaml: Ansible's own `yaml` inventory plugin (same files, same groups, hosts and variables), with a plain YAML
inventory file read by libyaml, or taken as solv-provision handed it over (the fast path of solv_provision.inventory,
one implementation for the CLI and for both plugins here; tests/test_inventory_fast_path.py proves ansible-inventory
gives the same with Ansible's own plugins). A file with anything else (vault, Jinja, a tag) goes to Ansible's loader.

Enabled in ansible.cfg in place of ansible.builtin.yaml, and before `auto`: Ansible's order tries `auto` first, which
parses every YAML inventory only to find it names no plugin. A plugin configuration file (`plugin: ...`) is refused
here as `yaml` refuses it, and `auto` reads it next.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

from ansible.plugins.inventory.yaml import InventoryModule as YamlInventory

try:
    from solv_provision import inventory
except ImportError:  # plain ansible-playbook from a checkout, package not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from solv_provision import inventory

DOCUMENTATION = """
    name: solv_yaml
    short_description: Ansible's yaml inventory plugin, a plain YAML file read by libyaml
    description:
        - Ansible's yaml inventory plugin; an inventory file that is plain YAML (no vault, no Jinja, no tag) is read by
          libyaml, or taken as solv-provision read it.
    options:
      yaml_extensions:
        description: list of 'valid' extensions for files containing YAML
        type: list
        elements: string
        default: ['.yaml', '.yml', '.json']
        env:
          - name: ANSIBLE_YAML_FILENAME_EXT
          - name: ANSIBLE_INVENTORY_PLUGIN_EXTS
        ini:
          - key: yaml_valid_extensions
            section: defaults
          - section: inventory_plugin_yaml
            key: yaml_valid_extensions
"""


class InventoryModule(YamlInventory):
    NAME = "solv_yaml"

    def parse(self, inventory_data, loader, path, cache=True):
        super().parse(inventory_data, _PlainFirst(loader), path, cache)


class _PlainFirst:
    """The run's DataLoader, whose load_from_file answers a plain YAML file from the fast path."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def load_from_file(self, file_name, *args, **kwargs):
        data = inventory.plain_yaml_handed(self._loader.path_dwim(file_name))
        if data is inventory.PLAIN_DEFER:
            return self._loader.load_from_file(file_name, *args, **kwargs)
        return copy.deepcopy(data)  # the plugin normalises groups in place; the read is shared
