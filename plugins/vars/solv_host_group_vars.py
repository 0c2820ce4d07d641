"""solv_host_group_vars: Ansible's own host_group_vars (group_vars/ and host_vars/ beside the inventory and the
playbook, same files, same order, same precedence), with a plain YAML file read by libyaml: the fast path of
solv_provision.inventory, the one `validate` uses (tests/test_inventory_fast_path.py proves both readers give the same
variables). A file with anything else (vault, Jinja, a tag) goes to Ansible's loader as before. At a thousand hosts
Ansible's reader cost `render litellm` 1.2 of its 6.5 s (bench/RESULTS.md).

Enabled in ansible.cfg (vars_plugins_enabled) in place of ansible.builtin.host_group_vars.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.plugins.vars.host_group_vars import VarsModule as HostGroupVars
from ansible.utils.vars import combine_vars

try:
    from solv_provision import inventory
except ImportError:  # plain ansible-playbook from a checkout, package not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from solv_provision import inventory

DOCUMENTATION = """
    name: solv_host_group_vars
    short_description: host_group_vars, plain YAML files read by libyaml
    requirements:
        - Enabled in configuration
    description:
        - Ansible's host_group_vars; a file that is plain YAML (no vault, no Jinja, no tag) is read by libyaml.
    options:
      stage:
        ini:
          - key: stage
            section: vars_solv_host_group_vars
        env:
          - name: ANSIBLE_VARS_PLUGIN_STAGE
      _valid_extensions:
        default: [".yml", ".yaml", ".json"]
        description: The extensions of variable files.
        env:
          - name: ANSIBLE_YAML_FILENAME_EXT
        ini:
          - key: yaml_valid_extensions
            section: defaults
        type: list
        elements: string
    extends_documentation_fragment:
      - vars_plugin_staging
"""


class VarsModule(HostGroupVars):
    def load_found_files(self, loader, data, found_files):
        for found in found_files:
            new_data = inventory.plain_yaml_handed(found)
            if new_data is inventory.PLAIN_DEFER:
                new_data = loader.load_from_file(found, cache="all", unsafe=True, trusted_as_template=True)
            if new_data:  # ignore empty files
                try:
                    data = combine_vars(data, new_data)
                except AnsibleError as e:
                    raise AnsibleParserError(f"Could not process {found!r}.") from e
        return data

