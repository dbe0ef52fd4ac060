"""How results look: pure text and HTML rendering, and the progress bar.

A leaf layer: it does no I/O and imports nothing of dbnb but :mod:`dbnb.errors`, so every
other layer (reports in ``engine``, pages in ``orm``, loads in ``frames``) may use it.
"""
