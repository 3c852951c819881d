"""R4 search parameter definitions, generated from the official package (see r4.py)."""
