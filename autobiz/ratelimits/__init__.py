"""Provider rate limits per provider account, shared by every worker process."""
