"""Order-to-cash workflows on the dev server, PostgreSQL and the provider sandbox."""
