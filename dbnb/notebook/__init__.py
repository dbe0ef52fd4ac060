"""What a person drives: the ``%db`` magic, the command table it shares with the CLI, catalog
views, and the tutorials runner.

The top of the package: it may import every layer below, and only ``dbnb.cli`` imports it.
"""
