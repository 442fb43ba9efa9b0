"""Device side of the service: the canonical reading model and everything that speaks a device's language.

Pure decoders (bytes or JSON in, canonical readings out) live apart from the code that does I/O.
"""
