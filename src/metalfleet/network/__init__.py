"""Tenant networks on the wire: switch drivers that move node ports with the lifecycle."""
