#!/usr/bin/env python3
"""Dies at start-up, like a server with a bad import."""
import no_such_module_for_conformance  # noqa: F401
