"""Access to I2C and serial buses behind small protocols, plus checksum helpers.

Third-party errors (``OSError`` from smbus2, ``SerialException`` from pyserial)
are translated into :mod:`agent.errors` here and nowhere else.
"""
