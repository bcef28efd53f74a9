X = 1
raise RuntimeError("config missing")
