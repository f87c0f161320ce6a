"""The backend: verifies and stores signed readings, mints GRID, runs the market."""
