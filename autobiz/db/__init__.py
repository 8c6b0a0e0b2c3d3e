"""PostgreSQL access: migrations, connection strings, and the tenant-scoped data layer."""

from autobiz.db.database import Database, TenantSession
from autobiz.db.dsn import admin_dsn, app_dsn

__all__ = ["Database", "TenantSession", "admin_dsn", "app_dsn"]
