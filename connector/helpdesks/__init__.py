"""Helpdesk clients (sans-I/O protocol + models per helpdesk) and the helpdesk field mappings."""
