"""Generator families by name. Imports are lazy so the CLI starts without torch/transformers."""
from __future__ import annotations

import importlib

from pydantic import ValidationError

from generators.base import Generator, GeneratorConfig
from validation.errors import ConfigError

# name -> "module:Class"
FAMILIES: dict[str, str] = {
    "copula": "generators.copula:CopulaGenerator",
    "vae": "generators.vae:VAEGenerator",
    "gan": "generators.gan:GANGenerator",
    "diffusion": "generators.diffusion:DiffusionGenerator",
    "llm": "generators.llm:LLMGenerator",
}


def generator_class(name: str) -> type[Generator]:
    """The class of family ``name``; a clear error lists the valid names."""
    target = FAMILIES.get(name)
    if target is None:
        raise ConfigError(f"unknown generator {name!r}; choose one of: {', '.join(FAMILIES)}")
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise ConfigError(f"generator {name!r} is not available in this build") from None
        raise
    return getattr(module, class_name)


def make_generator(name: str, options: dict | None = None, **common) -> Generator:
    """Build family ``name`` from a plain options dict (validated by its config model)."""
    cls = generator_class(name)
    try:
        config: GeneratorConfig = cls.config_class.model_validate({**(options or {}), **common})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid options for generator {name!r}: {problems}") from None
    return cls(config)


def load_generator(directory) -> Generator:
    """Load any saved generator by reading its family from generator.json."""
    import json
    from pathlib import Path

    family = json.loads((Path(directory) / "generator.json").read_text())["family"]
    return generator_class(family).load(Path(directory))
