"""Load an inventory with Ansible's own loader, so group_vars, host_vars and vault behave as in ansible-playbook."""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from solv_provision.paths import state_dir

# Ask Ansible to fail (not warn) on an inventory it cannot parse; must be set before ansible.constants loads.
os.environ.setdefault("ANSIBLE_INVENTORY_UNPARSED_FAILED", "True")
os.environ.setdefault("ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED", "True")

# Variables whose names start with these belong to us: they are checked against the roles' argument specs.
SOLV_PREFIXES = (
    "solv_",
    "vllm_",
    "litellm_",
    "searxng_",
    "openwebui_",
    "caddy_",
    "registry_",
    "node_exporter_",
    "dcgm_exporter_",
    "blackbox_exporter_",
    "prometheus_",
    "alertmanager_",
    "grafana_",
    "container_engine_",
    "nvidia_driver_",
    "nvidia_container_toolkit_",
)


class InventoryError(Exception):
    """The inventory could not be loaded at all (path missing, unparsable, vault locked)."""


@dataclass
class Unresolved:
    """A variable whose value could not be computed offline (a template over role defaults, a locked vault)."""

    reason: str


@dataclass
class Inventory:
    sources: list[Path]
    groups: dict[str, list[str]]
    hosts: dict[str, dict[str, Any]]  # host -> SOLV variables (+ address keys), templated where possible
    # The groups in Ansible's order (`groups` in a play): "the first host of a group" is read here.
    ordered_groups: dict[str, list[str]] = field(default_factory=dict)
    # Groups the monitoring rules compute, which Ansible does not know (--limit cannot name them).
    computed: frozenset[str] = frozenset()
    # host -> the variables of `hosts` whose value came from templating (the rest is exactly as the files say it).
    templated: dict[str, frozenset[str]] = field(default_factory=dict)
    _member_of: dict[str, list[str]] | None = field(default=None, repr=False, compare=False)

    @property
    def ansible_groups(self) -> dict[str, list[str]]:
        """The inventory's own groups, as Ansible sees them."""
        return {name: hosts for name, hosts in self.groups.items() if name not in self.computed}

    def in_group(self, group: str) -> list[str]:
        return self.groups.get(group, [])

    def ordered_group(self, group: str) -> list[str]:
        return self.ordered_groups.get(group, [])

    def group_names(self, host: str) -> list[str]:
        """The groups `host` is in (Ansible's `group_names`, with the computed groups), read once for all hosts."""
        if self._member_of is None:
            self._member_of = {}
            for group, members in self.groups.items():
                for member in members:
                    self._member_of.setdefault(member, []).append(group)
        return self._member_of.get(host, [])

    def provenance(self, host: str, key: str) -> Path | None:
        """The file that sets `key` for `host`, most specific first; None when unknown."""
        return _find_definition(self, host, key)


def is_solv_var(name: str) -> bool:
    return name.startswith(SOLV_PREFIXES)


# Keys read for every host besides ours: where the host is reached.
_ADDRESS_KEYS = ("ansible_host",)


def load(sources: list[str | Path], vault_password_file: str | None = None, fast_path: bool = True) -> Inventory:
    """Load inventory sources; raise InventoryError with a readable message when that is impossible.

    fast_path=False reads every file with Ansible's YAML loader (the reference the fast path is tested against)."""
    from ansible.errors import AnsibleError
    from ansible.parsing.dataloader import DataLoader

    paths = [Path(s).expanduser().resolve() for s in sources]
    for p in paths:
        if not p.exists():
            raise InventoryError(f"{p}: inventory not found")

    _init_plugins()
    loader = _plain_yaml_first(DataLoader)() if fast_path else DataLoader()
    vault_file = vault_password_file or os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    if vault_file:
        from ansible.parsing.vault import get_file_vault_secret

        try:
            secret = get_file_vault_secret(filename=vault_file, loader=loader)
            secret.load()
        except (AnsibleError, OSError) as exc:
            raise InventoryError(f"{vault_file}: cannot read the vault password: {exc}") from None
        loader.set_vault_secrets([("default", secret)])

    with _plain_read_stored() if fast_path else contextlib.nullcontext():
        return _load(paths, loader, fast_path)


def _load(paths: list[Path], loader, fast_path: bool) -> Inventory:
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    try:
        inv = InventoryManager(loader=loader, sources=[str(p) for p in paths])
        varman = VariableManager(loader=loader, inventory=inv)
    except AnsibleError as exc:
        raise InventoryError(_short(exc)) from None

    # Ansible's order (what `groups` holds in a play) decides "the first host of a group"; lists are sorted below.
    ordered = {name: [h.name for h in g.get_hosts()] for name, g in inv.groups.items()}
    hosts: dict[str, dict[str, Any]] = {}
    templated: dict[str, frozenset[str]] = {}
    for host in inv.get_hosts():
        try:
            allvars = _host_vars(varman, host, fast_path)
        except AnsibleError as exc:
            raise InventoryError(_yaml_problem(paths, host.name) or f"host {host.name}: {_short(exc)}") from None
        templar = Templar(loader=loader, variables=allvars)
        mine: dict[str, Any] = {}
        resolved = []
        for key in allvars:
            if is_solv_var(key) or key in _ADDRESS_KEYS:
                value = allvars[key]
                if fast_path and _templating_is_identity(value):
                    mine[key] = _plain(value)
                else:
                    mine[key] = _resolve(templar, allvars, key)
                    resolved.append(key)
        hosts[host.name] = mine
        templated[host.name] = frozenset(resolved)
    # With the monitoring rules' groups (solv_provision.monitoring), as the roles compute them.
    from solv_provision import monitoring

    for own, what in ((monitoring.MONITORED, "a node exporter"), (monitoring.GPU_MONITORED, "a DCGM exporter"),
                      (monitoring.PROBING, "a blackbox exporter")):
        if own in ordered:
            raise InventoryError(f"group '{own}' is the stack's own (the hosts that run {what}, computed): "
                                 "rename the inventory's group")
    computed = frozenset({monitoring.MONITORED, monitoring.GPU_MONITORED, monitoring.PROBING}
                         | ({monitoring.GROUP} if not ordered.get(monitoring.GROUP) else set()))
    ordered = monitoring.groups_with_monitoring(ordered, hosts)
    groups = {name: sorted(members) for name, members in ordered.items()}
    return Inventory(sources=paths, groups=groups, hosts=hosts, ordered_groups=ordered, computed=computed,
                     templated=templated)


def _host_vars(varman, host, fast_path: bool) -> dict[str, Any]:
    """Ansible's variables of a host. The fast path leaves cached facts out (they are named ansible_*, never one
    of ours): turning them into variables lists every connection plugin once per host, 40% of the time."""
    from ansible import constants as C  # noqa: N812

    inject = C.INJECT_FACTS_AS_VARS
    C.INJECT_FACTS_AS_VARS = inject and not fast_path
    try:
        return varman.get_vars(host=host, include_hostvars=False)
    finally:
        C.INJECT_FACTS_AS_VARS = inject


_plugins_ready = False


def _init_plugins() -> None:
    """Lookups (env, file) in inventory values resolve as in ansible-playbook; once per process."""
    global _plugins_ready
    if not _plugins_ready:
        from ansible.plugins.loader import init_plugin_loader

        init_plugin_loader()
        _plugins_ready = True


def _resolve(templar, allvars, key):
    return _plain(_resolve_value(templar, allvars[key]))


# --- the fast path for plain YAML --------------------------------------------------------------------------
# Ansible's YAML loader tags every value with its origin and costs ~8 s for an inventory of 1,000 hosts; libyaml
# reads the same files in well under a second. A file that is nothing but plain YAML (no vault, no Jinja, no tag,
# only str/int/float/bool/null/list/mapping) gives the same data either way (tests/test_inventory_fast_path.py
# compares both loaders' host variables); any other file is read by Ansible's loader. Everything else (inventory
# plugins, group order, precedence, group_vars/host_vars lookup) stays Ansible's own.
_TEMPLATE_MARKS = ("{{", "{%", "{#")
PLAIN_DEFER = object()


class _PlainLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """libyaml's safe loader: any tag (`!vault`, `!unsafe`) is an error, which sends the file to Ansible."""


# The plain YAML files this process read: path -> (its _identity when read, data). `apply` and `render` hand them to
# ansible-playbook (save_plain_read; SOLV_PLAIN_YAML_CACHE), whose inventory and group_vars/host_vars plugins then
# parse none of them again (plugins/inventory/solv_yaml.py, plugins/vars/solv_host_group_vars.py; plain_yaml_handed).
_READ: dict[str, tuple[list[int], Any]] = {}
PLAIN_YAML_CACHE = "SOLV_PLAIN_YAML_CACHE"


def plain_yaml(path: str) -> Any:
    """The file's data when it is plain YAML, else PLAIN_DEFER."""
    try:
        stat = os.stat(path)
    except OSError:
        return PLAIN_DEFER
    if _LOADING is not None:
        _LOADING.add(str(path))
    if _STORED is not None:
        entry = _STORED.get(str(path))
        if entry is not None and entry[:4] == _identity(stat):
            _READ[str(path)] = (entry[:4], entry[4])
            return entry[4]
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return PLAIN_DEFER
    if not text.strip() or text.lstrip().startswith("$ANSIBLE_VAULT") or any(m in text for m in _TEMPLATE_MARKS):
        return PLAIN_DEFER
    try:
        data = yaml.load(text, Loader=_PlainLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError:
        return PLAIN_DEFER  # Ansible's loader reports it, with its own message
    if not _templating_is_identity(data):
        return PLAIN_DEFER
    _READ[str(path)] = (_identity(stat), data)
    return data


# Across runs of solv-provision: the plain files its last inventory load read, each with what identifies its
# content (mtime, ctime, size, inode: ctime changes with every write and no tool sets it back), in the state folder
# (0600). A run over files that did not change reads them from there, not YAML again (1,000 hosts: 0.2 s).
# Only `load` uses it; ansible-playbook's plugins get the files handed over (save_plain_read).
_STORE = "inventory-plain-yaml.json"
_STORED: dict[str, list] | None = None  # path -> [mtime_ns, ctime_ns, size, inode, data] while `load` runs
_LOADING: set[str] | None = None  # the plain files asked for while `load` runs


def _identity(stat: os.stat_result) -> list[int]:
    return [stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino]


@contextlib.contextmanager
def _plain_read_stored():
    """While `load` runs: plain files taken from the store where unchanged; then the store holds this load's."""
    global _STORED, _LOADING
    try:
        with open(state_dir() / _STORE, encoding="utf-8") as handle:
            stored = json.load(handle)
    except (OSError, ValueError):
        stored = {}
    _STORED, _LOADING = stored if isinstance(stored, dict) else {}, set()
    try:
        yield
    finally:
        loaded, _STORED, _LOADING = _LOADING, None, None
    kept = {path: _READ[path][0] + [_READ[path][1]] for path in sorted(loaded) if path in _READ}
    if kept != stored:
        _write_store(kept)


def _write_store(kept: dict[str, list]) -> None:
    folder = state_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = folder / f".{_STORE}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(kept, out)
        os.replace(tmp, folder / _STORE)
    except OSError:
        pass  # a faster next run only


def save_plain_read(dest: Path) -> Path | None:
    """The plain YAML files this process read, into `dest` (JSON, 0600): plain data (str keys; str, int, float,
    bool, null, lists, mappings) survives JSON exactly, with each file's mtime and size. None when there is nothing
    to hand over."""
    if not _READ:
        return None
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({path: [mtime_ns, size, data] for path, ([mtime_ns, _, size, _], data) in _READ.items()}, out)
    return dest


def load_plain_read(source: str | None) -> dict[str, tuple[int, int, Any]]:
    """What save_plain_read wrote ({} without a file). A reader uses an entry only while the file's mtime and size
    are still the ones recorded."""
    if not source:
        return {}
    try:
        with open(source, encoding="utf-8") as handle:
            return {path: tuple(entry) for path, entry in json.load(handle).items()}
    except (OSError, ValueError):
        return {}


# In ansible-playbook: what solv-provision handed over, and each file read there (keyed by mtime too: a process that
# loads an inventory again after editing it, solv-provision itself and the tests, must not get the old data).
_HANDED_OVER: dict[str, tuple[int, int, Any]] | None = None
_PLAIN_READ: dict[tuple[str, int], Any] = {}


def plain_yaml_handed(path: str) -> Any:
    """plain_yaml for the plugins of ansible-playbook (the inventory file, group_vars/ and host_vars/): a file read
    once per process, not at all while solv-provision handed it over unchanged (same mtime and size). The data is
    shared: a caller that changes it copies it first."""
    global _HANDED_OVER
    if _HANDED_OVER is None:
        _HANDED_OVER = load_plain_read(os.environ.get(PLAIN_YAML_CACHE))
    try:
        stat = os.stat(path)
    except OSError:
        return PLAIN_DEFER
    key = (path, stat.st_mtime_ns)
    if _LOADING is not None:
        _LOADING.add(str(path))
    if key not in _PLAIN_READ:
        handed = _HANDED_OVER.get(path)
        same = handed is not None and handed[:2] == (stat.st_mtime_ns, stat.st_size)
        _PLAIN_READ[key] = handed[2] if same else plain_yaml(path)
    return _PLAIN_READ[key]


def _templating_is_identity(value: Any) -> bool:
    """Only str keys and str/int/float/bool/null/list/mapping values (Ansible's tagged subclasses included; a
    vaulted string, a date or a set is none of them) with no template marker: templating it would return it
    unchanged, and libyaml reads it as Ansible's loader does."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _templating_is_identity(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_templating_is_identity(v) for v in value)
    if isinstance(value, str):
        return not any(m in value for m in _TEMPLATE_MARKS)
    return value is None or isinstance(value, (int, float))


@functools.cache
def _plain_yaml_first(data_loader: type) -> type:
    """Ansible's DataLoader, reading plain YAML files with libyaml (cached per file, copied as Ansible does)."""

    class PlainYamlFirst(data_loader):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._plain_cache: dict[str, Any] = {}

        def load_from_file(self, file_name, cache="all", unsafe=False, json_only=False, trusted_as_template=False):
            path = self.path_dwim(file_name)
            data = self._plain_cache.get(path, PLAIN_DEFER) if cache != "none" else PLAIN_DEFER
            if data is PLAIN_DEFER and not json_only:
                data = plain_yaml(path)
                if data is not PLAIN_DEFER and cache != "none":
                    self._plain_cache[path] = data
            if data is PLAIN_DEFER:
                return super().load_from_file(file_name, cache=cache, unsafe=unsafe, json_only=json_only,
                                              trusted_as_template=trusted_as_template)
            return data if unsafe else copy.deepcopy(data)

    return PlainYamlFirst


def _plain(value):
    """Ansible's tagged str/int/float/dict/list as the plain types (what YAML gives): copying and validating
    tagged values costs several times as much, and nothing here reads their tags."""
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    for kind in (str, int, float):
        if isinstance(value, kind):
            return value if type(value) is kind else kind.__new__(kind, value)
    return value


def _resolve_value(templar, value):
    """Template a value; where that fails, keep the structure and mark only the failing leaves Unresolved."""
    try:
        return templar.template(value)
    except Exception as exc:  # noqa: BLE001 - any templating/vault failure makes the value unknown offline
        if isinstance(value, dict):
            return {k: _resolve_value(templar, v) for k, v in value.items()}
        if isinstance(value, list):
            return [_resolve_value(templar, v) for v in value]
        return Unresolved(_short(exc))


def has_unresolved(value) -> bool:
    if isinstance(value, Unresolved):
        return True
    if isinstance(value, dict):
        return any(has_unresolved(v) for v in value.values())
    if isinstance(value, list):
        return any(has_unresolved(v) for v in value)
    return False


def _yaml_problem(sources: list[Path], host: str) -> str | None:
    """Name the file, line and column of a YAML syntax error among the inventory's files."""
    for src in sources:
        root = src if src.is_dir() else src.parent
        for f in sorted(root.rglob("*")):
            if f.suffix not in (".yml", ".yaml", "") or not f.is_file() or f.name.startswith("."):
                continue
            try:
                yaml.load(f.read_text(encoding="utf-8"), Loader=_LenientLoader)  # noqa: S506
            except yaml.MarkedYAMLError as exc:
                mark = exc.context_mark or exc.problem_mark
                where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
                what = "; ".join(str(x) for x in (exc.context, exc.problem) if x)
                return f"{f}: not valid YAML ({where}): {what} (while loading host {host})"
            except (yaml.YAMLError, UnicodeDecodeError, OSError):
                continue
    return None


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- where a variable is defined --------------------------------------------------------------------------

_VAR_SUFFIXES = ("", ".yml", ".yaml", ".json")


def _var_files(base: Path, name: str) -> list[Path]:
    """Files Ansible would read for host_vars/<name> or group_vars/<name>."""
    found = []
    for suffix in _VAR_SUFFIXES:
        p = base / f"{name}{suffix}"
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            found.extend(sorted(f for f in p.rglob("*") if f.is_file()))
    return found


def _yaml_keys(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file (vault values as None); {} when it is not one. Parsed once per
    version of the file: provenance asks for the same files once per problem."""
    try:
        st = path.stat()
    except OSError:
        return {}
    return _parsed(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4096)
def _parsed(path: str, _mtime_ns: int, _size: int) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return {}
    if text.startswith("$ANSIBLE_VAULT"):
        return {}
    try:
        data = yaml.load(text, Loader=_LenientLoader)  # noqa: S506 - SafeLoader subclass that tolerates !vault tags
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _host_entry_in_source(data: Any, host: str, key: str) -> bool:
    """Is `key` set for `host` (or for a group holding it) inside a YAML inventory file's structure?"""
    if not isinstance(data, dict):
        return False
    for group in data.values():
        if not isinstance(group, dict):
            continue
        hosts = group.get("hosts") or {}
        if isinstance(hosts, dict) and host in hosts and isinstance(hosts[host], dict) and key in hosts[host]:
            return True
        if _host_entry_in_source(group.get("children") or {}, host, key):
            return True
    return False


def _find_definition(inv: Inventory, host: str, key: str) -> Path | None:
    host_groups = [g for g, members in inv.ansible_groups.items() if host in members and g != "all"]
    for src in inv.sources:
        root = src if src.is_dir() else src.parent
        for f in _var_files(root / "host_vars", host):
            if key in _yaml_keys(f):
                return f
        inventory_files = sorted(root.glob("*.y*ml")) if src.is_dir() else [src]
        for f in inventory_files:
            if _host_entry_in_source(_yaml_keys(f), host, key):
                return f
        for group in [*host_groups, "all"]:
            for f in _var_files(root / "group_vars", group):
                if key in _yaml_keys(f):
                    return f
    return None


class _LenientLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """SafeLoader that reads `!vault` (and any other tag) as null: enough to see which keys a file sets."""


_LenientLoader.add_multi_constructor("!", lambda loader, suffix, node: None)
