"""Find and read a guideline profile: a packaged profile name or a TOML file path."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from audit.guideline import Guideline, GuidelineError, parse_guideline

DEFAULT_PROFILE = "mayo-2013"


def packaged_profiles() -> list[str]:
    """Names of the profiles shipped with the package."""
    folder = resources.files("audit") / "guidelines"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def read_guideline_text(name_or_file: str) -> tuple[str, str]:
    """Return (text, origin) for a profile name or a path to a TOML file."""
    if name_or_file in packaged_profiles():
        res = resources.files("audit") / "guidelines" / f"{name_or_file}.toml"
        return res.read_text(encoding="utf-8"), f"{name_or_file} (packaged profile)"
    path = Path(name_or_file)
    if path.suffix.lower() == ".toml" and path.is_file():
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise GuidelineError(f"{path}: can't read guideline file ({exc.__class__.__name__})") from None
    raise GuidelineError(
        f"unknown guideline {name_or_file!r}: expected a profile name "
        f"({', '.join(packaged_profiles())}) or a path to a .toml profile file"
    )


def load_guideline(name_or_file: str = DEFAULT_PROFILE) -> Guideline:
    text, origin = read_guideline_text(name_or_file)
    return parse_guideline(text, origin)


def guideline_sha256(name_or_file: str = DEFAULT_PROFILE) -> str:
    text, _ = read_guideline_text(name_or_file)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
