"""Course settings in one place (_config.yml): install lines follow it, placeholders warn."""

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "_ext"))
import course  # noqa: E402
import course_settings  # noqa: E402
import settings  # noqa: E402


def test_every_install_line_uses_the_configured_repository():
    url = settings.read(ROOT)["repository"]
    found = settings.install_urls(ROOT)
    chapters = [p for p in found if p.parent.name == "book"]
    assert len(chapters) >= 8 and all(found[p] for p in chapters), "a chapter lacks the line"
    assert all(found[p] for p in found if p.parent.name == "solutions")
    assert {u for urls in found.values() for u in urls} == {url}


def test_the_build_warns_while_a_placeholder_is_left(capsys):
    messages = course_settings.check(ROOT)
    err = capsys.readouterr().err
    shipped = settings.read(ROOT)
    expected = [k for k in ("repository", "jupyterhub")
                if shipped[k] == settings.PLACEHOLDERS[k]]
    assert len(messages) == len(expected)
    for key in expected:
        assert settings.PLACEHOLDERS[key] in err and "COURSE SETTING PLACEHOLDER" in err
    assert "course_settings" in (ROOT / "_config.yml").read_text()


@pytest.fixture
def adopted(tmp_path):
    shutil.copytree(ROOT / "book", tmp_path / "book")
    (tmp_path / "solutions").mkdir()
    for path in (ROOT / "solutions").glob("[0-9][0-9]_*.py"):
        shutil.copy(path, tmp_path / "solutions")
    shutil.copytree(ROOT / "tools", tmp_path / "tools",
                    ignore=shutil.ignore_patterns("__pycache__"))
    config = (ROOT / "_config.yml").read_text()
    config = config.replace(settings.PLACEHOLDERS["repository"], "https://github.com/uni/norm")
    config = config.replace(settings.PLACEHOLDERS["jupyterhub"], "https://hub.uni.example")
    (tmp_path / "_config.yml").write_text(config)
    return tmp_path


def test_configure_writes_the_setting_everywhere(adopted, capsys):
    assert course.main(["--root", str(adopted), "configure"]) == 0
    urls = {u for found in settings.install_urls(adopted).values() for u in found}
    assert urls == {"https://github.com/uni/norm"}
    assert "make release" in capsys.readouterr().out
    assert course_settings.check(adopted) == []
    assert course.main(["--root", str(adopted), "configure"]) == 0  # idempotent
    assert "0 file(s)" in capsys.readouterr().out


def test_configure_needs_a_repository(adopted):
    (adopted / "_config.yml").write_text("title: x\n")
    with pytest.raises(ValueError, match="repository.url is not set"):
        settings.read(adopted)
