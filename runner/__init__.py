"""`creditbridge run`: the webhook receiver (gunicorn) and the scheduler as separate, supervised processes."""
