"""The nested spelling of the product docs in environment variables and the .env file
(``SECURITY__SECRET_KEY``, ``LLM__OPENAI_API_KEY``): read, typed like the flat ones, and beaten
by the flat spelling when both are set."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from relay_context.config.settings import Settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ("SECRET_KEY", "OPENAI_API_KEY", "RATE_LIMIT_REQUESTS", "CORS_ORIGINS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env file
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "state"))
    return monkeypatch


def test_nested_environment_variables_are_read(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SECURITY__SECRET_KEY", "nested-secret")
    clean_env.setenv("LLM__OPENAI_API_KEY", "sk-nested")
    clean_env.setenv("security__rate_limit_requests", "17")  # names are case-insensitive
    s = Settings()
    assert s.secret_key is not None
    assert s.secret_key.get_secret_value() == "nested-secret"
    assert s.openai_api_key is not None
    assert s.openai_api_key.get_secret_value() == "sk-nested"
    assert s.rate_limit_requests == 17


def test_complex_values_are_decoded_like_the_flat_ones(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SERVICE__CORS_ORIGINS", '["https://a.example", "https://b.example"]')
    assert Settings().cors_origins == ["https://a.example", "https://b.example"]


def test_the_flat_variable_wins(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SECURITY__SECRET_KEY", "nested-secret")
    clean_env.setenv("SECRET_KEY", "flat-secret")
    clean_env.setenv("SECURITY__RATE_LIMIT_REQUESTS", "5")
    clean_env.setenv("RATE_LIMIT_REQUESTS", "9")
    s = Settings()
    assert s.secret_key is not None
    assert s.secret_key.get_secret_value() == "flat-secret"
    assert s.rate_limit_requests == 9
    # Constructor arguments still beat the environment, in either spelling.
    assert Settings(security__rate_limit_requests=3).rate_limit_requests == 9  # flat env wins
    assert Settings(rate_limit_requests=4).rate_limit_requests == 4


def test_unknown_sections_and_fields_are_ignored(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OTHER__SECRET_KEY", "not-relays")
    clean_env.setenv("SECURITY__NO_SUCH_FIELD", "x")
    assert Settings().secret_key is None


def test_bad_nested_values_are_typed_errors(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SECURITY__RATE_LIMIT_REQUESTS", "many")
    with pytest.raises(ValueError, match="rate_limit_requests"):
        Settings()


def test_nested_lines_of_the_env_file(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "SECURITY__SECRET_KEY=file-nested\nLLM__OPENAI_API_KEY=sk-file\nRATE_LIMIT_REQUESTS=8\n"
        "SECURITY__RATE_LIMIT_REQUESTS=2\n",
        encoding="utf-8",
    )
    s = Settings()
    assert s.secret_key is not None
    assert s.secret_key.get_secret_value() == "file-nested"
    assert s.openai_api_key is not None
    assert s.openai_api_key.get_secret_value() == "sk-file"
    assert s.rate_limit_requests == 8  # flat wins in the file too
    clean_env.setenv("SECURITY__SECRET_KEY", "env-nested")  # the environment beats the file
    assert Settings().secret_key.get_secret_value() == "env-nested"  # type: ignore[union-attr]


def test_a_fresh_process_reads_them(tmp_path: Path) -> None:
    code = (
        "from relay_context.config.settings import get_settings as g; s = g(); "
        "print(s.secret_key.get_secret_value(), s.openai_api_key.get_secret_value())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"SECURITY__SECRET_KEY": "k1", "LLM__OPENAI_API_KEY": "sk-2", "HOME": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert out.stdout.split() == ["k1", "sk-2"]
