"""The local status page: a read-only HTTP server for the box's own state (no pictures)."""
