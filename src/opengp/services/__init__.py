"""Use cases: the only layer that combines store, access and interop."""
