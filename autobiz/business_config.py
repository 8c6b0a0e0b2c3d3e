"""Load a tenant's BusinessConfig from disk; an invalid one is refused (P1-R18..R20).

Workers and starters call ``load_business_config`` and so refuse to start on a config
that does not compile.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from autobiz.errors import ConfigError
from autobiz.settings import Settings
from kernel.codes import ErrorCode
from kernel.compiler import CompileResult, compile_text
from kernel.config import BusinessConfig
from kernel.cost import PriceTable


def compile_file(path: Path) -> CompileResult:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.strerror}", code=ErrorCode.CONFIG_UNREADABLE
        ) from None
    return compile_text(text)


def load_business_config(path: Path) -> BusinessConfig:
    result = compile_file(path)
    if not result.ok or result.config is None:
        lines = "; ".join(d.format(str(path)) for d in result.diagnostics)
        raise ConfigError(f"business config does not compile: {lines}")
    return result.config


def load_configs(
    config_dir: Path, files: Sequence[Path] | None = None
) -> dict[str, BusinessConfig]:
    """Every tenant config in ``config_dir``, compiled; one invalid file and none load."""
    paths = list(files) if files is not None else sorted(config_dir.glob("*.yaml"))
    if not paths:
        raise ConfigError(
            f"no BusinessConfig (*.yaml) in {config_dir}", code=ErrorCode.CONFIG_MISSING
        )
    configs: dict[str, BusinessConfig] = {}
    for path in paths:
        config = load_business_config(path)
        if config.tenant in configs:
            raise ConfigError(f"tenant {config.tenant} is configured twice ({path})")
        configs[config.tenant] = config
    return configs


def tenant_config_path(settings: Settings, tenant_id: str) -> Path:
    return settings.config_dir / f"{tenant_id}.yaml"


def load_price_table(settings: Settings) -> PriceTable | None:
    """The price table from ``settings.kernel.price_table_path`` (None: built-in)."""
    path = settings.kernel.price_table_path
    if path is None:
        return None
    import yaml

    try:
        return PriceTable.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise ConfigError(f"price table {path} is invalid: {exc}") from None
