"""Hub models through the real huggingface_hub code, against a loopback server that speaks just enough of the Hub.

The server answers the file-resolve endpoint (HEAD/GET with X-Repo-Commit, ETag, X-Linked-Etag/-Size,
Content-Length), the revision and tree APIs, and the repo-create/preupload/commit endpoints that `upload_folder`
uses. It never sends Xet headers, so plain HTTP downloads and inline uploads are what get exercised. Every request
is recorded; a client guard refuses any host but 127.0.0.1, so the tests cannot reach the real network.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx2
import pytest
from click.testing import CliRunner
from huggingface_hub import constants, set_client_factory
from huggingface_hub import file_download
from huggingface_hub.utils._http import default_client_factory, hf_request_event_hook

from conftest import make_tiny_model
from trinas.export import MODEL_FILES, WEIGHTS, load_model, model_card, read_config, write_config
from upscale import hub, models
from upscale.cli import main
from upscale.hub import HubError

TOKEN = "hf_loopback_test_token"
LFS_SUFFIXES = (".safetensors", ".bin")


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """In-memory repos (refs -> commit -> files) served over HTTP on 127.0.0.1, with injectable faults."""

    def __init__(self) -> None:
        self.repos: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.faults: dict[str, int] = {}  # repo -> HTTP status answered to every request about it
        self.corrupt: dict[tuple[str, str], str] = {}  # (repo, path) -> "flip" | "truncate"
        self.pushes: list[dict] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def add_commit(self, repo: str, files: dict[str, bytes], ref: str | None = "main") -> str:
        with self.lock:
            state = self.repos.setdefault(repo, {"refs": {}, "commits": {}})
            sha = hashlib.sha1(f"{repo}{len(state['commits'])}{sorted(files)}".encode()).hexdigest()
            state["commits"][sha] = dict(files)
            if ref:
                state["refs"][ref] = sha
            return sha

    def add_model(self, repo: str, folder: Path, ref: str | None = "main", extra: dict | None = None) -> str:
        files = {name: (folder / name).read_bytes() for name in MODEL_FILES}
        return self.add_commit(repo, {**files, **(extra or {})}, ref)

    def count(self, method: str | None = None, part: str = "") -> int:
        with self.lock:
            return sum(1 for m, p in self.requests if (method is None or m == method) and part in p)

    def reset_log(self) -> None:
        with self.lock:
            self.requests.clear()

    def resolve(self, repo: str, rev: str) -> str | None:
        state = self.repos[repo]
        if rev in state["refs"]:
            return state["refs"][rev]
        if rev in state["commits"]:
            return rev
        matches = [c for c in state["commits"] if len(rev) >= 7 and c.startswith(rev)]
        return matches[0] if len(matches) == 1 else None


def _handler(fake: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet test output
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None, length: int | None = None):
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, data, headers: dict | None = None):
            self._send(status, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})})

        def _error(self, status: int, code: str | None = None, message: str = "", headers: dict | None = None):
            extra = {**({"X-Error-Code": code} if code else {}), **({"X-Error-Message": message} if message else {})}
            self._json(status, {"error": message or code or "error"}, {**extra, **(headers or {})})

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))

        def _route(self):
            parts = [unquote(p) for p in urlsplit(self.path).path.split("/")[1:]]
            with fake.lock:
                fake.requests.append((self.command, urlsplit(self.path).path))
            if parts[:1] == ["api"]:
                if parts[1:3] == ["repos", "create"]:
                    return self._create(json.loads(self._body()))
                if parts[1:2] == ["validate-yaml"]:
                    self._body()
                    return self._json(200, {"errors": [], "warnings": []})
                if parts[1] == "models" and len(parts) >= 6:
                    return self._api("/".join(parts[2:4]), parts[4], parts[5])
            elif len(parts) >= 5 and parts[2] == "resolve":
                return self._file("/".join(parts[:2]), parts[3], "/".join(parts[4:]))
            return self._error(404, message="no such endpoint")

        def _check_repo(self, repo: str, rev: str | None) -> str | None:
            """The commit for `rev`, or None once an error answer has been sent."""
            if repo in fake.faults:
                status = fake.faults[repo]
                message = "Invalid credentials in Authorization header" if status == 401 else "fault"
                self._error(status, message=message)
                return None
            if repo not in fake.repos:
                self._error(404, "RepoNotFound", "Repository not found")
                return None
            commit = fake.resolve(repo, rev or "main")
            if commit is None:
                self._error(404, "RevisionNotFound", "Invalid rev id")
            return commit

        def _api(self, repo: str, kind: str, rev: str):
            if kind in ("preupload", "commit"):
                if self.headers.get("authorization") != f"Bearer {TOKEN}":
                    return self._error(401, message="Invalid credentials in Authorization header")
            commit = self._check_repo(repo, rev)
            if commit is None:
                return
            files = fake.repos[repo]["commits"][commit]
            if kind == "revision":
                return self._json(200, {"id": repo, "sha": commit, "siblings": [{"rfilename": f} for f in files]})
            if kind == "tree":
                return self._json(200, [{"type": "file", "path": path, "size": len(data), "oid": git_sha1(data),
                                         **({"lfs": {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                                                     "pointerSize": 134}} if path.endswith(LFS_SUFFIXES) else {})}
                                        for path, data in sorted(files.items())])
            if kind == "preupload":
                wanted = json.loads(self._body())["files"]
                return self._json(200, {"files": [
                    {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                     "oid": git_sha1(files[f["path"]]) if f["path"] in files else None} for f in wanted]})
            if kind == "commit":
                return self._commit(repo, rev, commit, self._body())
            return self._error(404, message="no such endpoint")

        def _create(self, payload: dict):
            if self.headers.get("authorization") != f"Bearer {TOKEN}":
                return self._error(401, message="Invalid credentials in Authorization header")
            repo = f"{payload['organization']}/{payload['name']}"
            if repo in fake.repos:
                return self._json(409, {"error": "You already created this model repo", "url": f"{fake.url}/{repo}"})
            fake.add_commit(repo, {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"})
            return self._json(200, {"url": f"{fake.url}/{repo}"})

        def _commit(self, repo: str, rev: str, parent: str, body: bytes):
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            added = {}
            deleted = set()
            for line in lines[1:]:
                if line["key"] == "deletedFile":
                    deleted.add(line["value"]["path"])
                    continue
                if line["key"] != "file":  # LFS/Xet uploads are not part of this fake
                    return self._error(422, message=f"unsupported operation {line['key']}")
                added[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
            kept = {p: d for p, d in fake.repos[repo]["commits"][parent].items() if p not in deleted}
            files = {**kept, **added}
            sha = fake.add_commit(repo, files, rev)
            with fake.lock:
                fake.pushes.append({"repo": repo, "revision": rev, "files": added, "header": lines[0]["value"]})
            return self._json(200, {"commitUrl": f"{fake.url}/{repo}/commit/{sha}", "commitOid": sha})

        def _file(self, repo: str, rev: str, path: str):
            commit = self._check_repo(repo, rev)
            if commit is None:
                return
            files = fake.repos[repo]["commits"][commit]
            if path not in files:
                return self._error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": commit})
            data = files[path]
            headers = {"X-Repo-Commit": commit, "ETag": f'"{git_sha1(data)}"',
                       "Content-Type": "application/octet-stream"}
            if path.endswith(LFS_SUFFIXES):
                headers.update({"X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"',
                                "X-Linked-Size": str(len(data))})
            fault = fake.corrupt.get((repo, path))
            if self.command == "GET" and fault == "flip":
                data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
            elif self.command == "GET" and fault == "truncate":
                data = data[: len(data) // 2]
            self._send(200, data, headers)

        def do_GET(self):
            self._route()

        def do_HEAD(self):
            self._route()

        def do_POST(self):
            self._route()

    return Handler


def _loopback_only(request: httpx2.Request) -> None:
    if request.url.host != "127.0.0.1":
        raise AssertionError(f"test tried to reach {request.url}")


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A running FakeHub, with HF_ENDPOINT/HF_HOME/HF_HUB_CACHE pointing at it and at tmp_path."""
    fake = FakeHub()
    fake.thread.start()
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    monkeypatch.setattr(models, "weights_root", lambda: tmp_path / "no-packaged-models")
    set_client_factory(lambda: httpx2.Client(event_hooks={"request": [_loopback_only, hf_request_event_hook]},
                                             follow_redirects=True, timeout=5))
    try:
        yield fake
    finally:
        set_client_factory(default_client_factory)
        fake.server.shutdown()
        fake.server.server_close()
        fake.thread.join(timeout=5)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return make_tiny_model(tmp_path / "tiny-x2")


def cache_files(tmp_path: Path) -> list[Path]:
    root = tmp_path / "hf" / "hub"
    return [p for p in root.rglob("*") if p.is_file() or p.is_symlink()] if root.exists() else []


# ---- download ---------------------------------------------------------------------------------------------------

def test_first_download_fetches_only_model_files_into_the_standard_cache(fake_hub, tiny, tmp_path):
    fake_hub.add_model("alice/tiny", tiny, extra={"pytorch_model.bin": b"\x80pickle", "notes.txt": b"hi"})

    folder = hub.fetch("hf:alice/tiny")

    assert folder.is_relative_to(tmp_path / "hf" / "hub" / "models--alice--tiny" / "snapshots")
    assert sorted(p.name for p in folder.iterdir()) == sorted(MODEL_FILES)
    assert {p for m, p in fake_hub.requests if m == "GET" and "/resolve/" in p} == \
        {f"/alice/tiny/resolve/{folder.name}/{name}" for name in MODEL_FILES}
    model = models.load("hf:alice/tiny")
    assert model.scale == 2


def test_cache_hit_downloads_nothing_and_a_pinned_commit_makes_no_request(fake_hub, tiny):
    commit = fake_hub.add_model("alice/tiny", tiny)
    first = hub.fetch("alice/tiny")
    fake_hub.reset_log()

    assert hub.fetch("alice/tiny") == first  # a branch: one look-up of the commit, no file transfer
    assert fake_hub.count("GET", "/resolve/") == 0 and fake_hub.count("HEAD") == 0
    assert fake_hub.count() == 1

    fake_hub.reset_log()
    assert hub.fetch(f"alice/tiny@{commit}") == first
    assert fake_hub.count() == 0


def test_revision_pinning_by_tag_and_commit(fake_hub, tmp_path):
    old = make_tiny_model(tmp_path / "old", seed=1)
    new = make_tiny_model(tmp_path / "new", seed=2)
    old_commit = fake_hub.add_model("alice/tiny", old, ref="v1")
    fake_hub.add_model("alice/tiny", new, ref="main")

    def weights_sha(spec):
        return read_config(hub.fetch(spec))["weights_sha256"]

    assert weights_sha("alice/tiny@v1") == read_config(old)["weights_sha256"]
    assert weights_sha("alice/tiny") == read_config(new)["weights_sha256"]
    assert hub.fetch(f"alice/tiny@{old_commit}") == hub.fetch("alice/tiny@v1")
    with pytest.raises(HubError, match="no revision 'v9'"):
        hub.fetch("alice/tiny@v9")


def test_offline_uses_the_cache_only(fake_hub, tiny, monkeypatch):
    fake_hub.add_model("alice/tiny", tiny)
    with pytest.raises(HubError, match=r"not in the cache.*upscale models pull hf:alice/tiny"):
        hub.fetch("alice/tiny", offline=True)
    assert fake_hub.count() == 0

    online = hub.fetch("alice/tiny")
    fake_hub.reset_log()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.fetch("alice/tiny") == online
    assert models.load("hf:alice/tiny").scale == 2
    assert fake_hub.count() == 0


def test_cli_offline_flag(fake_hub, tiny):
    fake_hub.add_model("alice/tiny", tiny)
    runner = CliRunner()

    missing = runner.invoke(main, ["--offline", "models", "pull", "hf:alice/tiny"])
    assert missing.exit_code == 1
    assert missing.stderr.strip().count("\n") == 0 and "upscale models pull hf:alice/tiny" in missing.stderr
    assert fake_hub.count() == 0

    assert runner.invoke(main, ["models", "pull", "hf:alice/tiny"]).exit_code == 0
    fake_hub.reset_log()
    cached = runner.invoke(main, ["--offline", "models", "info", "hf:alice/tiny", "--json"])
    assert cached.exit_code == 0, cached.output
    assert json.loads(cached.stdout)["scale"] == 2
    assert fake_hub.count() == 0


# ---- integrity --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("damaged, message", [
    (WEIGHTS, "model.safetensors does not match the sha256 in config.json"),
    ("config.json", "config.json is damaged"),
])
def test_corrupted_files_are_refused_and_removed_from_the_cache(fake_hub, tiny, tmp_path, damaged, message):
    fake_hub.add_model("alice/tiny", tiny)
    fake_hub.corrupt[("alice/tiny", damaged)] = "flip"

    with pytest.raises(HubError, match=message) as caught:
        hub.fetch("alice/tiny")
    assert "\n" not in str(caught.value) and "upscale models pull hf:alice/tiny" in str(caught.value)
    data = (tiny / damaged).read_bytes()
    blob = hashlib.sha256(data).hexdigest() if damaged == WEIGHTS else git_sha1(data)  # named by the ETag
    assert not [p for p in cache_files(tmp_path) if p.name in (damaged, blob) or p.name.endswith(".incomplete")]
    with pytest.raises(HubError, match="not in the cache"):
        hub.fetch("alice/tiny", offline=True)
    with pytest.raises(HubError):
        models.load("hf:alice/tiny")

    del fake_hub.corrupt[("alice/tiny", damaged)]  # the next pull downloads a good copy
    assert load_model(hub.fetch("alice/tiny")).scale == 2


def test_truncated_download_leaves_nothing_loadable(fake_hub, tiny, tmp_path):
    fake_hub.add_model("alice/tiny", tiny)
    fake_hub.corrupt[("alice/tiny", WEIGHTS)] = "truncate"

    with pytest.raises(HubError, match="cut short"):
        hub.fetch("alice/tiny")
    assert not [p for p in cache_files(tmp_path) if p.name == WEIGHTS or p.name.endswith(".incomplete")]
    assert not list((tmp_path / "hf" / "hub" / "models--alice--tiny" / "snapshots").glob("*"))


def test_a_repo_with_only_pickled_weights_is_refused_without_downloading_them(fake_hub, tiny):
    fake_hub.add_commit("bob/pickled", {"config.json": (tiny / "config.json").read_bytes(),
                                        "pytorch_model.bin": b"\x80\x04pickle"})
    with pytest.raises(HubError, match=r"only pickled weights \(pytorch_model.bin\)"):
        hub.fetch("bob/pickled")
    assert fake_hub.count("GET", "pytorch_model.bin") == 0


def test_disk_full_while_downloading(fake_hub, tiny, tmp_path, monkeypatch):
    fake_hub.add_model("alice/tiny", tiny)
    real_get = file_download.http_get

    def full_disk(url, temp_file, **kwargs):
        if url.endswith(WEIGHTS):
            temp_file.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_get(url, temp_file, **kwargs)

    monkeypatch.setattr(file_download, "http_get", full_disk)
    with pytest.raises(HubError, match="disk full") as caught:
        hub.fetch("alice/tiny")
    assert "\n" not in str(caught.value)
    assert not [p for p in cache_files(tmp_path) if p.name == WEIGHTS or p.name.endswith(".incomplete")]
    assert not list((tmp_path / "hf" / "hub" / "models--alice--tiny" / "snapshots").glob("*"))


# ---- errors -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("status, message", [
    (401, "rejected the credentials"),
    (403, "access denied"),
    (500, "answered 500"),
    (503, "answered 503"),
])
def test_http_errors_are_one_line(fake_hub, tiny, status, message):
    fake_hub.add_model("alice/tiny", tiny)
    fake_hub.faults["alice/tiny"] = status
    with pytest.raises(HubError, match=message) as caught:
        hub.fetch("alice/tiny")
    assert "\n" not in str(caught.value) and "hf:alice/tiny" in str(caught.value)


def test_unknown_repo_is_a_404_with_a_hint(fake_hub):
    with pytest.raises(HubError, match="no such repository") as caught:
        hub.fetch("nobody/nothing")
    assert "\n" not in str(caught.value)


def test_a_repo_far_over_a_models_size_is_refused_before_a_byte_is_downloaded(fake_hub, tiny, monkeypatch):
    """The sizes the Hub lists decide (a dry run of the download): a repo whose files come to more than any
    TriNAS model could need, or whose config is over a config's bound, is refused with nothing fetched."""
    fake_hub.add_model("alice/tiny", tiny)
    size = sum(p.stat().st_size for p in tiny.iterdir() if p.is_file())
    total, config = hub.MAX_DOWNLOAD_BYTES, hub.MAX_CONFIG_BYTES
    monkeypatch.setattr(hub, "MAX_DOWNLOAD_BYTES", size // 2)
    with pytest.raises(HubError, match=r"model files come to [\d,]+ bytes .* not downloaded"):
        hub.fetch("alice/tiny")
    assert fake_hub.count("GET", "/resolve/") == 0 and not list(hub.cache_dir().rglob("model.safetensors"))
    monkeypatch.setattr(hub, "MAX_DOWNLOAD_BYTES", total)
    monkeypatch.setattr(hub, "MAX_CONFIG_BYTES", 10)
    with pytest.raises(HubError, match=r"config.json is [\d,]+ bytes"):
        hub.fetch("alice/tiny")
    monkeypatch.setattr(hub, "MAX_CONFIG_BYTES", config)
    assert (hub.fetch("alice/tiny") / "model.safetensors").is_file()  # within the bounds it downloads


def test_a_cached_model_survives_a_hub_outage(fake_hub, tiny):
    fake_hub.add_model("alice/tiny", tiny)
    folder = hub.fetch("alice/tiny")
    fake_hub.faults["alice/tiny"] = 500
    assert hub.fetch("alice/tiny") == folder


def test_no_network(fake_hub, monkeypatch):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(HubError, match="cannot reach the Hub"):
        hub.fetch("alice/tiny")


def test_a_crafted_commit_id_cannot_make_the_cache_clean_up_delete_outside_it(fake_hub, tmp_path):
    """A Hub (or mirror) that answers `../../../../victim` as the commit of a branch: after a failed download,
    the clean-up reads that ref; it must not delete the folder the path points at (it did, with rmtree)."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    storage = tmp_path / "hf" / "hub" / "models--alice--tiny"
    (storage / "refs").mkdir(parents=True)
    (storage / "snapshots").mkdir()
    (storage / "refs" / "main").write_text("../../../../victim")
    assert (storage / "snapshots" / "../../../../victim").resolve() == victim.resolve()
    hub._discard_incomplete(storage, hub.HubSpec("alice/tiny"))
    hub.purge_snapshot(storage / "snapshots" / "../../../../victim", "precious.txt")
    hub.purge_snapshot(victim)
    assert (victim / "precious.txt").read_text() == "keep me"
    # a genuine incomplete snapshot is still cleaned up
    commit = "a" * 40
    (storage / "refs" / "main").write_text(commit)
    (storage / "snapshots" / commit).mkdir()
    hub._discard_incomplete(storage, hub.HubSpec("alice/tiny"))
    assert not (storage / "snapshots" / commit).exists()


def test_a_revision_that_would_leave_the_cache_is_refused(fake_hub, tmp_path):
    for spec in ("hf:alice/tiny@../../x", "hf:alice/tiny@/etc/x", "hf:alice/tiny@a/../../b", "hf:alice/tiny@..",
                 "hf:alice/tiny@a\\b"):
        with pytest.raises(HubError, match="bad Hub model spec"):
            hub.fetch(spec)
    assert fake_hub.count() == 0 and not (tmp_path / "x").exists()
    assert hub.parse_spec("hf:alice/tiny@refs/pr/1").revision == "refs/pr/1"  # real revisions still work


class SilentServer:
    """Accepts connections on 127.0.0.1 and never answers: a Hub that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent_hub(fake_hub, monkeypatch):
    """HF_ENDPOINT at a server that never answers, through huggingface_hub's own default HTTP client."""
    from huggingface_hub.utils import close_session

    server = SilentServer()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("UPSCALE_HUB_TIMEOUT", "1")
    close_session()
    set_client_factory(default_client_factory)  # the library's default: no timeout of its own
    yield server
    close_session()
    server.close()


def finishes(call, seconds: float = 20.0):
    """Run `call` in a thread; return its exception (or None), or fail if it is still waiting after `seconds`."""
    outcome: list = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting for the Hub after {seconds:.0f} s"
    return outcome[0]


def test_a_hub_that_never_answers_is_a_one_line_error_not_a_hang(silent_hub):
    error = finishes(lambda: hub.fetch("alice/tiny"))
    assert isinstance(error, HubError) and "did not answer within 1 s" in str(error) and "\n" not in str(error)


def test_a_cached_branch_is_used_when_the_hub_never_answers(fake_hub, tiny, monkeypatch):
    from huggingface_hub.utils import close_session

    fake_hub.add_model("alice/tiny", tiny)
    folder = hub.fetch("alice/tiny")
    server = SilentServer()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("UPSCALE_HUB_TIMEOUT", "1")
    close_session()
    set_client_factory(default_client_factory)
    try:
        found: list = []
        started = time.monotonic()
        assert finishes(lambda: found.append(hub.fetch("alice/tiny"))) is None
        assert found == [folder]
        assert time.monotonic() - started < 1.9  # one wait of the 1 s timeout, not one per attempt
    finally:
        close_session()
        server.close()


def test_bad_specs_are_refused_before_any_request(fake_hub):
    for spec in ("hf:alice", "hf:alice/tiny@", "hf:a/b/c", "hf:../x"):
        with pytest.raises(HubError, match="expected hf:owner/repo"):
            hub.fetch(spec)
    assert fake_hub.count() == 0


def test_cli_errors_are_one_line_without_traceback(fake_hub):
    result = CliRunner().invoke(main, ["models", "pull", "hf:nobody/nothing"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: hf:nobody/nothing") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


# ---- publish ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("xet_disabled", [False, True], ids=["pipelined-upload", "single-commit"])
def test_push_sends_the_model_files_with_a_generated_card(fake_hub, tiny, monkeypatch, xet_disabled):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", xet_disabled)  # both upload paths of huggingface_hub
    (tiny / "README.md").write_text("stale hand-edited card\n")
    (tiny / "checkpoint.pt").write_bytes(b"\x80pickle")
    (tiny / "notes.txt").write_text("not part of a model")

    result = hub.push(tiny, "carol/searched-x2")

    assert len(fake_hub.pushes) == 1
    pushed = fake_hub.pushes[0]
    assert pushed["repo"] == "carol/searched-x2" and pushed["revision"] == "main"
    assert sorted(pushed["files"]) == sorted([*MODEL_FILES, "architecture.png"])  # and the card's picture
    assert pushed["files"]["model.safetensors"] == (tiny / WEIGHTS).read_bytes()
    assert pushed["files"]["config.json"] == (tiny / "config.json").read_bytes()
    assert pushed["files"]["README.md"].decode() == model_card(read_config(tiny), ("architecture.png",))
    assert "](architecture.png)" in pushed["files"]["README.md"].decode()
    assert result.commit == fake_hub.repos["carol/searched-x2"]["refs"]["main"]

    assert load_model(hub.fetch(f"carol/searched-x2@{result.commit}")).scale == 2  # round trip


def test_push_leaves_only_the_model_and_refuses_what_a_fetch_would_refuse(fake_hub, tiny, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    fake_hub.add_commit("carol/old", {".gitattributes": b"*.bin filter=lfs\n", "pytorch_model.bin": b"\x80pickle",
                                      "notes.txt": b"old"})
    hub.push(tiny, "carol/old")
    latest = fake_hub.repos["carol/old"]["commits"][fake_hub.repos["carol/old"]["refs"]["main"]]
    assert sorted(latest) == sorted([".gitattributes", *MODEL_FILES, "architecture.png"])
    config = read_config(tiny)
    del config["weights_sha256"]
    write_config(tiny, config)
    with pytest.raises(HubError, match="no weights_sha256"):
        hub.push(tiny, "carol/old")


def test_models_list_skips_what_a_fetch_would_refuse_and_survives_a_bad_config(fake_hub, tiny, tmp_path):
    fake_hub.add_model("alice/tiny", tiny)
    fake_hub.add_model("alice/other", tiny)
    good, bad = hub.fetch("alice/tiny"), hub.fetch("alice/other")
    assert {e.spec for e in models.cached_models()} == {"hf:alice/tiny", "hf:alice/other"}
    config_blob = Path(os.path.realpath(bad / "config.json"))
    config_blob.write_text('{"architecture": "TriNet", "genotype": 5}')  # damaged in the cache
    assert [e.spec for e in models.cached_models()] == ["hf:alice/tiny"] and good.is_dir()


def test_push_needs_a_token_and_the_network(fake_hub, tiny, monkeypatch):
    with pytest.raises(HubError, match="needs a Hugging Face token"):
        hub.push(tiny, "carol/x")
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(HubError, match="rejected the credentials|no write access"):
        hub.push(tiny, "carol/x")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match="offline"):
        hub.push(tiny, "carol/x")
    assert not fake_hub.pushes


def test_push_refuses_a_folder_that_would_not_load(fake_hub, tiny, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    config = read_config(tiny)
    write_config(tiny, {**config, "weights_sha256": "0" * 64})
    with pytest.raises(Exception, match="sha256 does not match"):
        hub.push(tiny, "carol/x")
    assert fake_hub.count() == 0


def test_cli_push(fake_hub, tiny, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    result = CliRunner().invoke(main, ["models", "push", str(tiny), "--repo", "carol/cli-x2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["repo"] == "carol/cli-x2"
    assert sorted(fake_hub.pushes[0]["files"]) == sorted([*MODEL_FILES, "architecture.png"])


# ---- list / info ------------------------------------------------------------------------------------------------

def test_models_list_shows_packaged_and_cached_models(fake_hub, tiny, tmp_path, monkeypatch):
    packaged = tmp_path / "weights"
    make_tiny_model(packaged / "trinas-x4", scale=4)  # no "hub" record yet: still listed
    better = make_tiny_model(packaged / "trinas-x4-better", scale=4)
    write_config(better, {**read_config(better), "metrics": {"Set5": {"psnr": 30.0, "ssim": 0.8, "bicubic_psnr": 28.0,
                                                                      "bicubic_ssim": 0.75}}})
    monkeypatch.setattr(models, "weights_root", lambda: packaged)
    config = read_config(tiny)
    write_config(tiny, {**config, "metrics": {"Set5": {"psnr": 33.5, "ssim": 0.91, "bicubic_psnr": 30.0,
                                                       "bicubic_ssim": 0.87}}})
    fake_hub.add_model("alice/tiny", tiny)
    hub.fetch("alice/tiny")

    result = CliRunner().invoke(main, ["models", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["spec"]: row for row in json.loads(result.stdout)}
    assert rows["trinas-x4"]["source"] == "packaged" and rows["trinas-x4"]["scale"] == 4
    assert rows["trinas-x4"]["hub"] is None
    assert rows["hf:alice/tiny"]["source"] == "cache" and rows["hf:alice/tiny"]["psnr"] == {"Set5": 33.5}
    assert rows["hf:alice/tiny"]["params"] == config["params"]
    # the one --scale 4 picks (recorded figures beat none), and only packaged models are defaults
    assert [spec for spec, row in rows.items() if row["default"]] == ["trinas-x4-better"]

    table = CliRunner().invoke(main, ["models", "list"], terminal_width=200)
    assert table.exit_code == 0 and "trinas-x4" in table.stdout and "33.50" in table.stdout
    assert "x4, default" in table.stdout

    (packaged / "trinas-x4" / "config.json").write_text("{damaged")  # the others are still listed
    rows = json.loads(CliRunner().invoke(main, ["models", "list", "--json"]).stdout)
    assert [row["spec"] for row in rows if row["source"] == "packaged"] == ["trinas-x4-better"]
    assert not any(row["default"] for row in rows)  # --scale 4 would fail on the damaged one: no default claimed


def test_models_info_shows_the_hub_record_and_the_card(fake_hub, tmp_path, monkeypatch):
    packaged = tmp_path / "weights"
    folder = make_tiny_model(packaged / "trinas-x2")
    monkeypatch.setattr(models, "weights_root", lambda: packaged)
    runner = CliRunner()

    bare = runner.invoke(main, ["models", "info", "trinas-x2"], terminal_width=200)
    assert bare.exit_code == 0, bare.output
    assert "publish as hf:trinas-upscale/trinas-x2" in bare.stdout and "x2 single-image" in bare.stdout

    write_config(folder, hub.with_hub_record(read_config(folder), "trinas-upscale/trinas-x2", "a" * 40))
    recorded = runner.invoke(main, ["models", "info", "trinas-x2", "--json"])
    assert json.loads(recorded.stdout)["hub"] == f"hf:trinas-upscale/trinas-x2@{'a' * 40}"


def test_pull_of_a_packaged_name_points_at_its_hub_copy(fake_hub, tmp_path, monkeypatch):
    packaged = tmp_path / "weights"
    make_tiny_model(packaged / "trinas-x2")
    monkeypatch.setattr(models, "weights_root", lambda: packaged)
    with pytest.raises(HubError, match="upscale models pull hf:trinas-upscale/trinas-x2"):
        models.pull("trinas-x2")


def test_the_hub_module_is_transport_only():
    """upscale.hub never imports upscale.models: specs, listing and describing live there."""
    import ast

    tree = ast.parse(Path(hub.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "models" not in imported and "upscale.models" not in imported


def test_the_card_pictures_come_along_when_the_repository_has_them(fake_hub, tiny):
    fake_hub.add_model("alice/pictured", tiny, extra={"architecture.png": (tiny / "architecture.png").read_bytes(),
                                                      "notes.png": b"not ours"})
    folder = hub.fetch("hf:alice/pictured")
    assert sorted(p.name for p in folder.iterdir()) == sorted([*MODEL_FILES, "architecture.png"])
