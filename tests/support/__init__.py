"""Real services for tests: a Mosquitto broker per test, a throw-away PostgreSQL database, processes."""
