"""fedprune: command-line entry point (simulate, report, export) over fedserver/fedclient."""
