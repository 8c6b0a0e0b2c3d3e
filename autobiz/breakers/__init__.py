"""Circuit breakers per provider account, shared by every worker (DESIGN §8)."""
