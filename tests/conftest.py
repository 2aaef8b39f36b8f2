pytest_plugins = ["worker.testing.pytest_plugin", "worker.testing.backend_fixtures"]
