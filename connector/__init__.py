"""sla-connector: vendor support contracts computed and written back into the helpdesk."""

__version__ = "0.1.0"
