"""A stand-in for SearXNG's search API (lab and tests only; stdlib + PyYAML, as in the lab base image)."""
