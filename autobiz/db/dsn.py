"""Connection strings: the owner (migrations, the named admin path) and the application role."""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from autobiz.settings import Settings

EMBEDDED_DATABASE = "autobiz"
EMBEDDED_SUPERUSER = "postgres"


def admin_dsn(settings: Settings) -> str:
    """The owner's connection: ``AUTOBIZ_DATABASE_URL``, else the embedded server."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    pg = settings.postgres
    return make_conninfo(
        host=pg.host, port=pg.port, user=EMBEDDED_SUPERUSER, dbname=EMBEDDED_DATABASE
    )


def app_dsn(settings: Settings) -> str:
    """The application role's connection: the owner's with the app role swapped in."""
    if settings.app_database_url is not None:
        return settings.app_database_url.get_secret_value()
    params = conninfo_to_dict(admin_dsn(settings))
    params["user"] = settings.postgres.app_role
    params.pop("password", None)
    if settings.postgres.app_password is not None:
        params["password"] = settings.postgres.app_password.get_secret_value()
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def describe(dsn: str) -> str:
    """A DSN safe to print: host, port, database and user, never the password."""
    params = conninfo_to_dict(dsn)
    host = params.get("host", "localhost")
    port = params.get("port", "5432")
    return f"postgresql://{params.get('user', '')}@{host}:{port}/{params.get('dbname', '')}"
