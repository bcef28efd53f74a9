# Fails to load at line 2.
raise RuntimeError("broken on purpose")
