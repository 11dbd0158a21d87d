"""Packaged configuration files (class tables and model configs)."""
