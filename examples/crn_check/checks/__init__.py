"""Business registration number checks: the model, the task and the API."""
