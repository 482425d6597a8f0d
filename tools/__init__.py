"""Tooling around the lab, never copied into an image: the demo, the dashboard generator,
and the helpers that start the services as local processes (demo, tests, benchmark)."""
