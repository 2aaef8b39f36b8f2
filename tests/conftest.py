pytest_plugins = ["worker.testing.pytest_plugin"]
