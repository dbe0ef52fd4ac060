"""Example domains used by the tutorials, the demo and the tests."""
