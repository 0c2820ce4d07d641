"""solv-provision: provision the SOLV stack (SearXNG, Open WebUI, LiteLLM, vLLM) with Ansible."""

__version__ = "0.1.0"
