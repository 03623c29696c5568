"""Oddstream: the installed package and the composition root.

`gateway`, `workers` and `shared` here are links to the repository's top-level layer folders,
so one `oddstream` namespace is what gets installed (no generic top-level names in a user's
environment). The modules beside them (`cli`, `dev`, `embedded`, `simulator`) are the only
code that wires gateways and workers together.
"""

__version__ = "0.1.0"
