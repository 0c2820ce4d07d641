"""Run or import a role's Ansible module without Ansible, as Ansible would: the role's module_utils importable
as ansible.module_utils.<name>. As a script: `python module_runner.py MODULE ARGS_FILE` runs MODULE as __main__."""

from __future__ import annotations

import importlib.util
import runpy
import sys
from pathlib import Path


def register_module_utils(module: Path) -> None:
    for path in sorted((module.parents[1] / "module_utils").glob("*.py")):
        name = f"ansible.module_utils.{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)


def module_util(role: Path, name: str):
    """A role's module_utils/<name>.py, imported as Ansible names it."""
    register_module_utils(role / "library" / "_")
    return sys.modules[f"ansible.module_utils.{name}"]


def load(module: Path):
    """The module imported (its main() not run)."""
    register_module_utils(module)
    spec = importlib.util.spec_from_file_location(f"{module.stem}_module", module)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def command(module: Path, args_file: Path) -> list[str]:
    """The argv that runs `module` with an ANSIBLE_MODULE_ARGS file."""
    return [sys.executable, __file__, str(module), str(args_file)]


if __name__ == "__main__":
    target = Path(sys.argv[1])
    register_module_utils(target)
    sys.argv = [str(target), *sys.argv[2:]]
    runpy.run_path(str(target), run_name="__main__")
