"""The harness's built-in backend plugins, installed as ``harness_plugins``.

Each module is registered through the ``harness`` entry-point group, exactly like a third-party
plugin: nothing in the core refers to these modules by name.
"""
