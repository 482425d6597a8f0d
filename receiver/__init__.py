"""receiver: FastAPI service that calls upstream for every request, in one of five modes."""
