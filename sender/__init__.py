"""sender: fires bursts of simultaneous requests at the receiver and compares them to the model."""
