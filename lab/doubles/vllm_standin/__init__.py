"""A stand-in for vLLM's OpenAI-compatible server (lab and tests only; stdlib only)."""
