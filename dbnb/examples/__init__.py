"""The tutorial domain (``shop``: models, seed data, services) and the ``dbnb demo`` tour.

Built on the public layers like a user's own code would be; only ``dbnb.cli`` imports it.
"""
