"""sender: load for the receivers. Bursts of simultaneous requests, compared to the model, or
an open loop at a steady rate that times every request from its intended send time."""
