"""NVIDIA DCGM exporter stand-in (lab only)."""
