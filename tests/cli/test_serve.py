"""`serve`: a warning when anyone on the network would be admin, none on loopback or with logins."""

import pytest

import webui.app as app
from common.access import parse_auth


@pytest.mark.parametrize(
    ("host", "warned"), [("0.0.0.0", True), ("192.168.1.7", True), ("127.0.0.1", False), ("::1", False)]
)
def test_serving_beyond_loopback_without_logins_warns(host, warned, tmp_path, monkeypatch, capsys):
    from common.context import AppConfig, build_context

    launched = []
    monkeypatch.setattr(app, "launch_app", lambda ctx, **kw: launched.append(kw))
    ctx = build_context(AppConfig(home=tmp_path / "home"))
    try:
        app.serve(ctx, parse_auth(None), host=host, port=7861)
    finally:
        ctx.store.close()
    err = capsys.readouterr().err
    assert ("without --auth" in err) is warned
    assert launched == [{"host": host, "port": 7861, "auth": None}]


def test_logins_silence_the_warning(tmp_path, monkeypatch, capsys):
    from common.context import AppConfig, build_context

    users = tmp_path / "users.txt"
    users.write_text("ann:pw-1\n")
    monkeypatch.setattr(app, "launch_app", lambda ctx, **kw: None)
    ctx = build_context(AppConfig(home=tmp_path / "home"))
    try:
        app.serve(ctx, parse_auth(str(users)), host="0.0.0.0", port=7861)
        assert ctx.access.enabled
    finally:
        ctx.store.close()
    assert "without --auth" not in capsys.readouterr().err
