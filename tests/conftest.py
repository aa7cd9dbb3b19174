"""Test-session set-up shared by every test directory."""

import os

# mbi warns (and loses precision) if JAX starts in float32; set it before anything imports JAX.
os.environ.setdefault("JAX_ENABLE_X64", "1")
os.environ.setdefault("JAX_ENABLE_COMPILATION_CACHE", "false")
