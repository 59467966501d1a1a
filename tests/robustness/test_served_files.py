"""Nothing under the home is served: a logged-in user gets no database, WAL, snapshot, adapter or secret, by
absolute or relative path, while the charts a page shows still load."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import httpx

from common.settings import Paths
from tests.seed import seed_pairs
from tests.serving import ROOT, serving

USERS = {"ann": "pw-annotator-1", "root": "pw-admin-2"}


def tiny_png() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = zlib.compress(b"\x00\x00\x00\x00")
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def finished_run(home: Path) -> Path:
    """A done DPO run with a report, a curves chart, a snapshot and an adapter in its folder."""
    from store import Store

    with Store.open(home / "preflab.duckdb") as store:
        run = store.create_run("dpo", {}, dataset_hash="x", model_id=None, ref_model_id=None)
        run_dir = Paths(home).runs / str(run.id)
        (run_dir / "adapter").mkdir(parents=True)
        (run_dir / "adapter" / "adapter_model.safetensors").write_bytes(b"ADAPTER-WEIGHTS")
        (run_dir / "train.parquet").write_bytes(b"PAR1 snapshot of every triple")
        (run_dir / "report.md").write_text("# Run report\n\n![curves](curves.png)\n")
        (run_dir / "curves.png").write_bytes(tiny_png())
        store.update_run(run.id, status="done", adapter_path=str(run_dir / "adapter"))
    return run_dir


def login(url: str, user: str) -> httpx.Client:
    http = httpx.Client(base_url=url, timeout=20)
    resp = http.post("login", data={"username": user, "password": USERS[user]})
    assert resp.status_code == 200, resp.text
    return http


def test_a_logged_in_user_downloads_nothing_from_the_home_but_charts_load(tmp_path):
    from gradio_client import Client

    home = tmp_path / "home"
    seed_pairs(home, 4)
    run_dir = finished_run(home)
    secret = Paths(home).secret
    Paths(home).install_secret()
    users = tmp_path / "users.txt"
    users.write_text("ann:pw-annotator-1\nroot:pw-admin-2:admin\n")
    with serving(home, "--auth", str(users)) as (url, _proc):
        admin = Client(url, auth=("root", USERS["root"]), verbose=False, download_files=False)
        outputs = admin.predict(api_name="/train_cancel")  # returns the refreshed tab, curves included
        admin.close()
        files = [o.get("value", o) for o in outputs if isinstance(o, dict)]
        charts = [f for f in files if isinstance(f, dict) and str(f.get("path", "")).endswith(".png")]
        assert charts, outputs
        chart_path = charts[0]["path"]
        assert not Path(chart_path).is_relative_to(run_dir), chart_path

        for user in USERS:
            http = login(url, user)
            chart = http.get(charts[0]["url"])
            assert chart.status_code == 200 and chart.content.startswith(b"\x89PNG"), user
            wal = home / "preflab.duckdb.wal"
            assert wal.is_file()  # the serving process has written since it opened the database
            private = [
                home / "preflab.duckdb",
                wal,
                secret,
                run_dir / "train.parquet",
                run_dir / "adapter" / "adapter_model.safetensors",
                run_dir / "curves.png",  # served only as the copy made for the page
                run_dir / "report.md",
            ]
            for path in private:
                for spelled in (
                    str(path),
                    os.path.relpath(path, ROOT),
                    str(Paths(home).served / ".." / path.relative_to(home)),
                ):
                    resp = http.get(f"gradio_api/file={spelled}")
                    assert resp.status_code in (403, 404), (user, spelled, resp.status_code)
                    assert b"ADAPTER" not in resp.content and b"PAR1" not in resp.content
            http.close()
