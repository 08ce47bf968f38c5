"""Shared pytest set-up: nothing needs the network (GPT-2's vocabulary ships with the package)."""
