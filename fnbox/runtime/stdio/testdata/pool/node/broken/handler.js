// Fails to load at line 2.
throw new Error("broken on purpose");
